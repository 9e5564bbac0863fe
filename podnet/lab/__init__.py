"""netns labs: a whole Kubernetes-style cluster on one machine, built from namespaces.

`spec` describes a lab (pure, testable without root); `net.Lab` realises it; `controller`
keeps the desired state while the lab lives; `cli` is `podnet lab ...`.
"""
