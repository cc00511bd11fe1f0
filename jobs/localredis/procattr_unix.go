//go:build unix

package localredis

import (
	"os/exec"
	"syscall"
)

// detach puts the server in a process group of its own, so a Ctrl-C at the
// terminal (SIGINT to the foreground group) reaches only llamapipe, which
// stops its workers first and the server last (Stop).
func detach(c *exec.Cmd) { c.SysProcAttr = &syscall.SysProcAttr{Setpgid: true} }
