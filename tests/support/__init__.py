"""What the tests and the benchmarks share: namespaces that never outlive a test
(`netns`), a CNI runtime driving plugins through libcni (`cni_runtime`, with the Go driver
in `cnidriver/`), a real etcd (`etcd_server`), synthetic proxy objects (`synthetic`) and the
proxy's one-node namespace cluster (`proxy_lab`, with `echo_server` and `probe`, which run
inside its namespaces).

Benchmarks import it as `tests.support` when run as modules from the repository root
(`python -m bench.cni`), so nothing edits `sys.path`."""
