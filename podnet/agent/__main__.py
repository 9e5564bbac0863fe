"""`python -m podnet.agent ...`: the same command as `podnet agent ...`, without importing the
rest of the podnet command line (the lab, debug and IPAM groups: about 0.15 s of CPU that
every agent of a lab would spend before its first step)."""

from podnet.agent.cli import agent

if __name__ == "__main__":
    agent(prog_name="podnet agent")
