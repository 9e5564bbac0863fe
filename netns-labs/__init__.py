"""This directory is also the package `podnet.netns_labs` (see setup.py): its topologies and
manifests are package data, so `podnet lab up` finds them in any install of podnet."""
