// Package apiclienttest is a Go client of the HTTP API, generated from
// ingest/api/openapi.yaml with oapi-codegen: proof that the document is
// enough to write a client, used by ingest/api's tests to submit and follow
// a batch. It is test tooling (its name ends in "test"): the llamapipe
// binary never links it (cmd/llamapipe/house_test.go checks that).
package apiclienttest

//go:generate go run github.com/oapi-codegen/oapi-codegen/v2/cmd/oapi-codegen@v2.8.2 -config oapi-codegen.yaml ../openapi.yaml
