// Checks Grafana dashboard JSON against Grafana's dashboard schema, strictly. The
// grafana-foundation-sdk types are generated from Grafana's own schema; their strict decoding
// fails on a missing required field, a field of the wrong type or an unknown field, down to
// each core panel's options and field config and each Prometheus query.
package main

import (
	"errors"
	"fmt"
	"os"

	"github.com/grafana/grafana-foundation-sdk/go/cog"
	"github.com/grafana/grafana-foundation-sdk/go/cog/plugins"
	"github.com/grafana/grafana-foundation-sdk/go/dashboard"
)

func check(raw []byte) (int, error) {
	var board dashboard.Dashboard
	err := board.UnmarshalJSONStrict(raw)
	var errs cog.BuildErrors
	if errors.As(err, &errs) && len(errs) == 0 {
		err = nil // the decoder returns an empty error list when all is well
	}
	return len(board.Panels), err
}

func main() {
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: dashboard-check FILE.json...")
		os.Exit(2)
	}
	plugins.RegisterDefaultPlugins()
	failed := false
	for _, path := range os.Args[1:] {
		raw, err := os.ReadFile(path)
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(2)
		}
		panels, err := check(raw)
		if err != nil {
			fmt.Printf("%s: %v\n", path, err)
			failed = true
			continue
		}
		fmt.Printf("%s: valid, %d panels\n", path, panels)
	}
	if failed {
		os.Exit(1)
	}
}
