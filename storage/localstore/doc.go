// Package localstore is the storage.Store backend for a folder on a local
// (or mounted) file system: object keys are file paths below one root folder.
//
// It owns the mapping of keys to files, atomic and durable writes (temporary
// file in the destination folder, then a group commit shared by the Puts
// waiting at the time: sync the files' data, rename them, sync the folders;
// see commit.go), ETags derived from file
// metadata, and listings in S3's lexical key order. It knows nothing about S3, jobs or what
// the bytes mean.
//
// Confinement: every key passes storage.CleanKey (no empty keys, absolute
// paths or ".." elements), and all file access goes through an os.Root, so a
// symbolic link below the root cannot lead outside it either: such an access
// fails. Get and Stat follow symbolic links that stay inside the root; List
// does not follow symbolic links at all (they are not listed).
//
// Differences from S3 that callers may meet: a key cannot be both an object
// and a "folder" ("a" and "a/b" cannot coexist, Put fails), contentType is not
// stored, and PageSize in storage.ListOptions has no effect. A root folder
// that does not exist is not created by Open or by reads (they report it as
// storage.ErrNotExist), only by the first Put: a missing source is never
// created, and an output folder appears with its first object.
package localstore
