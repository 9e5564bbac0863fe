"""Only what pyproject.toml cannot say: the topologies in netns-labs/ are package data of
`podnet.netns_labs`, so `podnet lab up` finds the tutorial in any install, editable or not,
while people keep finding them at the top of the repository."""

from setuptools import find_packages, setup

setup(
    packages=[
        *find_packages(include=["cni*", "cluster*", "ipam*", "netns*", "proxy*", "podnet*", "policy*", "safeload*"]),
        "podnet.netns_labs",
    ],
    package_dir={"podnet.netns_labs": "netns-labs"},
    package_data={"podnet.netns_labs": ["*.yaml", "*.sh"]},
)
