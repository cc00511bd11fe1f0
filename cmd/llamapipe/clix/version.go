package clix

import (
	"cmp"
	"runtime/debug"
)

// Version is what a binary knows of its build (runtime/debug.BuildInfo):
// the module version ("(devel)" for a build from a checkout), the VCS
// commit and whether the tree had changes, and the Go version.
type Version struct {
	Module   string `json:"version"`
	Commit   string `json:"commit,omitempty"`
	Time     string `json:"commit_time,omitempty"`
	Modified bool   `json:"modified,omitempty"`
	Go       string `json:"go"`
}

// ReadVersion reads the running binary's build info.
func ReadVersion() Version {
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return Version{Module: "unknown"}
	}
	return versionOf(bi)
}

func versionOf(bi *debug.BuildInfo) Version {
	v := Version{Module: cmp.Or(bi.Main.Version, "(devel)"), Go: bi.GoVersion}
	for _, s := range bi.Settings {
		switch s.Key {
		case "vcs.revision":
			v.Commit = s.Value
		case "vcs.time":
			v.Time = s.Value
		case "vcs.modified":
			v.Modified = s.Value == "true"
		}
	}
	return v
}

// String is the one line --version prints after the program's name:
// "v1.2.0 (commit 0123abcd, go1.26.8)".
func (v Version) String() string {
	s := v.Module + " ("
	if v.Commit != "" {
		c := v.Commit
		if len(c) > 12 {
			c = c[:12]
		}
		s += "commit " + c
		if v.Modified {
			s += "+modified"
		}
		s += ", "
	}
	return s + v.Go + ")"
}
