package worker_test

import (
	"context"
	"path"
	"strings"
	"testing"

	"github.com/llamapipe/llamapipe/ingest"
	"github.com/llamapipe/llamapipe/jobs"
	"github.com/llamapipe/llamapipe/storage"
	"github.com/llamapipe/llamapipe/storage/localstore"
)

// Without a tenants file the worker still knows each batch's tenant for
// batch mode: identical requests of two tenants get a line each, under
// each tenant's own output, never one shared under the other's.
func TestBatchModeKeepsTenantsApartWithoutATenantsFile(t *testing.T) {
	e := newBatchModeEnv(t)
	src := contractFolder(t, 2)
	outs := map[string]string{"alpha": t.TempDir(), "beta": t.TempDir()}
	ids := map[string]string{}
	for _, tenant := range []string{"alpha", "beta"} {
		res := e.ingest(ingest.Options{Spec: jobs.Spec{Sources: []string{src}, Out: outs[tenant], Tenant: tenant,
			Options: jobs.Options{ModelMode: jobs.ModelBatch}}})
		ids[tenant] = res.BatchID
	}
	e.submitted(1)
	owner := map[string]string{} // request line → the tenant whose output holds it
	for tenant, dir := range outs {
		out, err := localstore.Open(dir)
		if err != nil {
			t.Fatal(err)
		}
		lines := 0
		for info, err := range out.List(context.Background(), ".llamapipe/batch/", storage.ListOptions{Recursive: true}) {
			if err != nil {
				t.Fatal(err)
			}
			if strings.HasSuffix(info.Key, ".line") {
				lines++
				id := path.Base(info.Key)
				if other, ok := owner[id]; ok {
					t.Errorf("request %s under both %s's and %s's output: shared across tenants", id, other, tenant)
				}
				owner[id] = tenant
			}
		}
		if lines != 2 {
			t.Errorf("tenant %s: %d request lines under its output, want its own 2", tenant, lines)
		}
	}
	for _, j := range e.fake.Batches() {
		e.complete(j)
	}
	for tenant, dir := range outs {
		_, es := e.finish(ids[tenant], dir)
		for _, en := range es {
			if en.Status != jobs.StatusDone {
				t.Errorf("%s: %s %s %s", tenant, en.Source, en.Status, en.Error)
			}
		}
	}
}
