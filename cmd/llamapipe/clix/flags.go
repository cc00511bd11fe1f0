package clix

import (
	"fmt"

	"github.com/dustin/go-humanize"
	"github.com/urfave/cli/v3"
)

// Flag categories of the help, one per topic.
const (
	CatBatch    = "Batch"
	CatWorker   = "Worker"
	CatModel    = "Model"
	CatOutput   = "Output"
	CatTenancy  = "Tenancy"
	CatServer   = "Server"
	CatSchedule = "Schedule"
	CatBench    = "Bench"
)

// Category puts flags under one heading of the help and returns them.
// Flags that already have a category keep it.
func Category(name string, fs []cli.Flag) []cli.Flag {
	for _, f := range fs {
		c, ok := f.(interface {
			GetCategory() string
			SetCategory(string)
		})
		if ok && c.GetCategory() == "" {
			c.SetCategory(name)
		}
	}
	return fs
}

// ParseSize reads a size with or without a unit: "536870912", "10MB"
// (10,000,000 bytes), "10MiB" (10,485,760), "1.5 GiB". It is
// go-humanize's ParseBytes, refusing what does not fit an int64.
func ParseSize(s string) (int64, error) {
	n, err := humanize.ParseBytes(s)
	if err != nil {
		return 0, fmt.Errorf("%q is not a size (e.g. 10MB, 512MiB, 1GiB or a number of bytes)", s)
	}
	if n > 1<<62 {
		return 0, fmt.Errorf("%q is too large", s)
	}
	return int64(n), nil
}

// FormatSize writes a size as ParseSize reads it back, in IEC units.
func FormatSize(n int64) string {
	if n < 0 {
		return fmt.Sprint(n)
	}
	return humanize.IBytes(uint64(n))
}

// Size is a flag value in bytes that reads units (ParseSize), for a
// cli.GenericFlag: &cli.GenericFlag{Name: "max-size", Value: clix.NewSize(512 << 20)}.
type Size struct{ n int64 }

// NewSize returns a Size holding n bytes.
func NewSize(n int64) *Size { return &Size{n: n} }

// Set parses s (ParseSize).
func (s *Size) Set(v string) error {
	n, err := ParseSize(v)
	if err != nil {
		return err
	}
	s.n = n
	return nil
}

// String is the size in IEC units, as the help shows the default.
func (s *Size) String() string { return FormatSize(s.n) }

// Get returns the size in bytes, an int64.
func (s *Size) Get() any { return s.n }

// Bytes returns the size in bytes.
func (s *Size) Bytes() int64 { return s.n }

// SizeOf reads a Size flag of cmd in bytes (0 when it is not one).
func SizeOf(cmd *cli.Command, name string) int64 {
	n, _ := cmd.Value(name).(int64) // a GenericFlag's value is its Value's Get
	return n
}
