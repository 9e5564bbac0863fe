"""The iptables mode: renderer (render.py) -> Transaction (transaction.py) -> executor (executor.py)."""
