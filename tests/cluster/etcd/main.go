// Command etcd is the etcd server at exactly the version k8s.io/kubernetes
// requires, so the apiserver is always tested against the etcd it was
// released with.
package main

import (
	"os"

	"go.etcd.io/etcd/server/v3/etcdmain"
)

func main() {
	etcdmain.Main(os.Args)
}
