// Command cni-driver is podnet's test runtime: it runs CNI plugins through libcni, the
// library containerd and CRI-O call, so the tests see chaining, prevResult, the result
// cache and reverse-order CHECK/DEL exactly as a real runtime produces them.
//
//	cni-driver add|check|del|validate CONFFILE [NETNS_PATH] [CONTAINER_ID] [IFNAME]
//
// CONFFILE is a network list (.conflist) or one network (.conf/.json, wrapped into a list).
//
// Environment:
//
//	CNI_PATH       plugin directories, ':'-separated
//	CNI_CACHE_DIR  libcni's result cache (default /var/lib/cni)
//	CAP_ARGS       runtime capabilities as a JSON object, e.g. {"portMappings":[...]}
//	CNI_ARGS       extra plugin arguments, "K=V;K=V"
//
// ADD prints the result JSON on stdout; VALIDATE prints the capabilities the list accepts,
// one a line. Any error is printed on stderr and the exit status is 1.
//
// Built offline by `make test-tools` from Debian's golang-go and golang-github-appc-cni-dev.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/containernetworking/cni/libcni"
)

const usage = "usage: cni-driver add|check|del|validate CONFFILE [NETNS_PATH] [CONTAINER_ID] [IFNAME]"

// invocation is one command line, parsed.
type invocation struct {
	verb     string
	confFile string
	netns    string
	id       string
	ifname   string
}

func parseArgs(args []string) (invocation, error) {
	if len(args) < 2 || len(args) > 5 {
		return invocation{}, errors.New(usage)
	}
	at := func(i int) string {
		if i < len(args) {
			return args[i]
		}
		return ""
	}
	inv := invocation{verb: args[0], confFile: args[1], netns: at(2), id: at(3), ifname: at(4)}
	if inv.ifname == "" {
		inv.ifname = "eth0"
	}
	if inv.id == "" {
		// A stable id per namespace, so that ADD and DEL without one still pair up.
		inv.id = "cni-driver-" + filepath.Base(inv.netns)
	}
	return inv, nil
}

// readNetworkList loads a .conflist as is; any other file is one network made into a list.
func readNetworkList(path string) (*libcni.NetworkConfigList, error) {
	if filepath.Ext(path) == ".conflist" {
		return libcni.ConfListFromFile(path)
	}
	single, err := libcni.ConfFromFile(path)
	if err != nil {
		return nil, err
	}
	return libcni.ConfListFromConf(single)
}

// runtimeConf is what a runtime hands libcni for one attachment.
func runtimeConf(inv invocation) (*libcni.RuntimeConf, error) {
	rt := &libcni.RuntimeConf{ContainerID: inv.id, NetNS: inv.netns, IfName: inv.ifname}
	if raw := os.Getenv("CAP_ARGS"); raw != "" {
		if err := json.Unmarshal([]byte(raw), &rt.CapabilityArgs); err != nil {
			return nil, fmt.Errorf("CAP_ARGS must be a JSON object: %w", err)
		}
	}
	for _, pair := range strings.Split(os.Getenv("CNI_ARGS"), ";") {
		if pair == "" {
			continue
		}
		key, value, ok := strings.Cut(pair, "=")
		if !ok {
			return nil, fmt.Errorf("CNI_ARGS: %q is not KEY=VALUE", pair)
		}
		rt.Args = append(rt.Args, [2]string{key, value})
	}
	return rt, nil
}

func run(ctx context.Context, inv invocation) error {
	list, err := readNetworkList(inv.confFile)
	if err != nil {
		return fmt.Errorf("reading %s: %w", inv.confFile, err)
	}
	cacheDir := os.Getenv("CNI_CACHE_DIR")
	if cacheDir == "" {
		cacheDir = "/var/lib/cni"
	}
	cni := libcni.NewCNIConfigWithCacheDir(filepath.SplitList(os.Getenv("CNI_PATH")), cacheDir, nil)

	if inv.verb == "validate" {
		caps, err := cni.ValidateNetworkList(ctx, list)
		if err != nil {
			return fmt.Errorf("validate: %w", err)
		}
		for _, c := range caps {
			fmt.Println(c)
		}
		return nil
	}

	rt, err := runtimeConf(inv)
	if err != nil {
		return err
	}
	switch inv.verb {
	case "add":
		result, err := cni.AddNetworkList(ctx, list, rt)
		if err != nil {
			return fmt.Errorf("add: %w", err)
		}
		return result.Print()
	case "check":
		if err := cni.CheckNetworkList(ctx, list, rt); err != nil {
			return fmt.Errorf("check: %w", err)
		}
	case "del":
		if err := cni.DelNetworkList(ctx, list, rt); err != nil {
			return fmt.Errorf("del: %w", err)
		}
	default:
		return fmt.Errorf("unknown verb %q; %s", inv.verb, usage)
	}
	return nil
}

func main() {
	inv, err := parseArgs(os.Args[1:])
	if err == nil {
		err = run(context.Background(), inv)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "cni-driver:", err)
		os.Exit(1)
	}
}
