"""Packet-capture debugging: capture at any pod or node, trace one packet hop by hop, and a
connectivity matrix of a whole lab."""
