// Package clix holds the pieces of the llamapipe command line that are not
// wiring: the exit-code table, the version from the build info, flag
// categories for the help, sizes with units, and the shapes --json prints.
//
// It knows urfave/cli and the project's record types (jobs), never how a
// batch is made or processed.
package clix
