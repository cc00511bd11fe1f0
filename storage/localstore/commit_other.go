//go:build !linux

package localstore

var defaultSyncer syncer = fsyncer{}
