//go:build !unix

package localredis

import "os/exec"

func detach(*exec.Cmd) {}
