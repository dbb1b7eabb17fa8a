// A CoreDNS with only the plugins a one-node test cluster uses (ci/build-node-images.sh).
// The stock build links every cloud DNS provider; this one builds in a fraction of the time.
package main

import (
	"github.com/coredns/coredns/core/dnsserver"
	"github.com/coredns/coredns/coremain"

	_ "github.com/coredns/coredns/plugin/cache"
	_ "github.com/coredns/coredns/plugin/errors"
	_ "github.com/coredns/coredns/plugin/health"
	_ "github.com/coredns/coredns/plugin/kubernetes"
	_ "github.com/coredns/coredns/plugin/log"
	_ "github.com/coredns/coredns/plugin/ready"
)

func main() {
	// The order plugins see a query in; the same relative order as CoreDNS's plugin.cfg.
	dnsserver.Directives = []string{"ready", "health", "errors", "log", "cache", "kubernetes"}
	coremain.Run()
}
