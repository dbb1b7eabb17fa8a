// The sandbox ("pause") process of every pod: it holds the pod's namespaces, reaps the
// zombies of a shared PID namespace and exits on SIGTERM/SIGINT. No registry serves
// registry.k8s.io/pause here, so ci/build-node-images.sh builds this one.
package main

import (
	"os"
	"os/signal"
	"syscall"
)

func main() {
	sig := make(chan os.Signal, 8)
	signal.Notify(sig, syscall.SIGTERM, syscall.SIGINT, syscall.SIGCHLD)
	for s := range sig {
		if s != syscall.SIGCHLD {
			os.Exit(0)
		}
		for {
			pid, err := syscall.Wait4(-1, nil, syscall.WNOHANG, nil)
			if pid <= 0 || err != nil {
				break
			}
		}
	}
}
