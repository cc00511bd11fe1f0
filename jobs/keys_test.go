package jobs_test

import (
	"context"
	"go/ast"
	"go/parser"
	"go/token"
	"io/fs"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/llamapipe/llamapipe/jobs"
	"github.com/llamapipe/llamapipe/jobs/jobstest"
	"github.com/llamapipe/llamapipe/jobs/redisconn"
)

// keyCase pins one key function's output. The want strings are the keys
// llamapipe has written so far: data in users' Redis is found under them,
// so a change here is a migration, not a refactoring.
type keyCase struct {
	fn        string // the function in keys.go
	got, want string
}

const (
	quota = "llamapipe:llm:groq:meta-llama/llama-4-scout-17b-16e-instruct"
	group = "groq-meta-llama-llama-4-scout-17b-16e-instruct"
)

func keyCases() []keyCase {
	return []keyCase{
		{"BatchKey", jobs.BatchKey("llamapipe", "20261125-ab12"), "llamapipe:batch:{20261125-ab12}"},
		{"BatchKey", jobs.BatchKey("", "b1"), "llamapipe:batch:{b1}"},
		{"BatchKey", jobs.BatchKey("acme", "b1"), "acme:batch:{b1}"},
		{"BatchItemsKey", jobs.BatchItemsKey("llamapipe", "b1"), "llamapipe:batch:{b1}:items"},
		{"BatchProgressKey", jobs.BatchProgressKey("llamapipe", "b1"), "llamapipe:batch:{b1}:progress"},
		{"BatchSeriesKey", jobs.BatchSeriesKey("llamapipe", "b1"), "llamapipe:batch:{b1}:series"},
		{"BatchTombstoneKey", jobs.BatchTombstoneKey("llamapipe", "b1"), "llamapipe:batch:{b1}:tombstone"},
		{"BatchRecordedKey", jobs.BatchRecordedKey("llamapipe", "b1"), "llamapipe:batch:{b1}:recorded"},
		{"BatchSpillLockKey", jobs.BatchSpillLockKey("llamapipe", "b1"), "llamapipe:batch:{b1}:spill"},
		{"BatchFeedKey", jobs.BatchFeedKey("llamapipe", "b1"), "llamapipe:batch:{b1}:feed"},
		{"BatchFeedLockKey", jobs.BatchFeedLockKey("", "b1"), "llamapipe:batch:{b1}:feed:lock"},
		{"BatchMappedKey", jobs.BatchMappedKey("llamapipe", "b1", "9f86d081"), "llamapipe:batch:{b1}:mapped:9f86d081"},
		{"KeptAnswersKey", jobs.KeptAnswersKey("llamapipe", "b1", "9f86d081"), "llamapipe:batch:{b1}:kept:9f86d081"},
		{"BatchesKey", jobs.BatchesKey("llamapipe"), "llamapipe:batches"},
		{"BatchesKey", jobs.BatchesKey(""), "llamapipe:batches"},
		{"TenantBatchesKey", jobs.TenantBatchesKey("llamapipe", "legal"), "llamapipe:tenant:legal:batches"},
		{"ContentResultKey", jobs.ContentResultKey("llamapipe", "", "c0ffee"), "llamapipe:content:c0ffee"},
		{"ContentResultKey", jobs.ContentResultKey("llamapipe", "legal", "c0ffee"), "llamapipe:content:legal:c0ffee"},
		{"ContentClaimKey", jobs.ContentClaimKey("llamapipe", "", "c0ffee"), "{llamapipe:content:c0ffee}:claim"},
		{"ContentClaimKey", jobs.ContentClaimKey("llamapipe", "legal", "c0ffee"), "{llamapipe:content:legal:c0ffee}:claim"},
		{"TenantSpendKey", jobs.TenantSpendKey("llamapipe", "legal", "2026-11-25"), "llamapipe:tenants:{legal}:spend:2026-11-25"},
		{"TenantSpendKey", jobs.TenantSpendKey("", "legal", "2026-11"), "llamapipe:tenants:{legal}:spend:2026-11"},
		{"WatchStateKey", jobs.WatchStateKey("llamapipe", "contracts-inbox"), "llamapipe:watch:{contracts-inbox}"},
		{"WatchSeenKey", jobs.WatchSeenKey("llamapipe", "contracts-inbox"), "llamapipe:watch:{contracts-inbox}:seen"},
		{"WatchLeaseKey", jobs.WatchLeaseKey("llamapipe", "contracts-inbox"), "llamapipe:watch:{contracts-inbox}:lease"},
		{"WatchEventsProcessingKey", jobs.WatchEventsProcessingKey("bucketevents"), "bucketevents:processing"},
		{"SchedulerLeaderKey", jobs.SchedulerLeaderKey(), "llamapipe:scheduler:leader"},
		{"IdempotencyKey", jobs.IdempotencyKey("llamapipe", "legal", "k-1"), "llamapipe:api:idempotency:legal:k-1"},
		{"IdempotencyKey", jobs.IdempotencyKey("llamapipe", "", "k-1"), "llamapipe:api:idempotency::k-1"},
		{"ModelQuotaName", jobs.ModelQuotaName("groq", "meta-llama/llama-4-scout-17b-16e-instruct"), quota},
		{"RequestRateKey", jobs.RequestRateKey(quota), quota + ":rpm"},
		{"TokenRateKey", jobs.TokenRateKey(quota), quota + ":tpm"},
		{"ProviderHoldKey", jobs.ProviderHoldKey(quota), quota + ":hold"},
		{"ProviderOutageKey", jobs.ProviderOutageKey(quota), quota + ":outage"},
		{"ProvidersDownKey", jobs.ProvidersDownKey(), "llamapipe:llm:down"},
		{"FairShareLeasesKey", jobs.FairShareLeasesKey(quota), "{" + quota + "}:fair:leases"},
		{"FairShareWaitersKey", jobs.FairShareWaitersKey(quota), "{" + quota + "}:fair:waiters"},
		{"FairShareActiveKey", jobs.FairShareActiveKey(quota), "{" + quota + "}:fair:active"},
		{"FairShareWeightsKey", jobs.FairShareWeightsKey(quota), "{" + quota + "}:fair:weights"},
		{"BatchModeRequestKey", jobs.BatchModeRequestKey(group, "5e884898"), "llamapipe:bm:{" + group + "}:r:5e884898"},
		{"BatchModeWaitersKey", jobs.BatchModeWaitersKey(group, "5e884898"), "llamapipe:bm:{" + group + "}:waiters:5e884898"},
		{"BatchModePendingKey", jobs.BatchModePendingKey(group), "llamapipe:bm:{" + group + "}:pending"},
		{"BatchModeJobKey", jobs.BatchModeJobKey(group, "batch_01"), "llamapipe:bm:{" + group + "}:job:batch_01"},
		{"BatchModeJobMetaKey", jobs.BatchModeJobMetaKey(group, "batch_01"), "llamapipe:bm:{" + group + "}:jobmeta:batch_01"},
		{"BatchModeJobDoneKey", jobs.BatchModeJobDoneKey(group, "batch_01"), "llamapipe:bm:{" + group + "}:jobdone:batch_01"},
		{"BatchModeCollectLockKey", jobs.BatchModeCollectLockKey(group), "llamapipe:bm:{" + group + "}:collecting"},
		{"BatchModeFailKey", jobs.BatchModeFailKey(group, "poll:batch_01"), "llamapipe:bm:{" + group + "}:fail:poll:batch_01"},
	}
}

func TestKeysPinned(t *testing.T) {
	for _, c := range keyCases() {
		if c.got != c.want {
			t.Errorf("%s = %q, want %q (keys already in users' Redis would be lost)", c.fn, c.got, c.want)
		}
	}
}

// The lifetimes moved beside the keys keep the values they had where they
// were written (jobs/chunks.go, jobs/tenants, worker/image.go,
// worker/batchmode.go, the API, ingest/watch and the scheduler).
func TestKeyTTLsPinned(t *testing.T) {
	const day = 24 * time.Hour
	for _, c := range []struct {
		name      string
		got, want time.Duration
	}{
		{"MappedTTL", jobs.MappedTTL, 7 * day},
		{"KeptAnswerTTL", jobs.KeptAnswerTTL, 7 * day},
		{"ContentResultTTL", jobs.ContentResultTTL, 30 * day},
		{"ContentClaimTTL", jobs.ContentClaimTTL, 10 * time.Minute},
		{"SpendDayTTL", jobs.SpendDayTTL, 3 * day},
		{"SpendMonthTTL", jobs.SpendMonthTTL, 40 * day},
		{"LeaseTTL", jobs.LeaseTTL, 30 * time.Second},
		{"IdempotencyTTL", jobs.IdempotencyTTL, day},
		{"IdempotencyReserveTTL", jobs.IdempotencyReserveTTL, time.Hour},
		{"BatchModeRequestTTL", jobs.BatchModeRequestTTL, 10 * day},
		{"BatchModeJobTTL", jobs.BatchModeJobTTL, 8 * day},
		{"DefaultRetention", jobs.DefaultRetention, 30 * day},
		{"TombstoneTTL", jobs.TombstoneTTL, 365 * day},
		{"LostTTL", jobs.LostTTL, 7 * day},
	} {
		if c.got != c.want {
			t.Errorf("%s = %v, want %v", c.name, c.got, c.want)
		}
	}
}

// hashTag is the part of a key Redis Cluster hashes: what is between the
// first '{' and the next '}', when not empty; else the whole key.
func hashTag(key string) string {
	if i := strings.IndexByte(key, '{'); i >= 0 {
		if j := strings.IndexByte(key[i+1:], '}'); j > 0 {
			return key[i+1 : i+1+j]
		}
	}
	return key
}

// Keys that one script or transaction touches together must hash to one
// Cluster slot.
func TestKeysShareHashTags(t *testing.T) {
	groups := map[string][]string{
		"b1":    {jobs.BatchKey("", "b1"), jobs.BatchItemsKey("", "b1"), jobs.BatchProgressKey("", "b1"), jobs.BatchSeriesKey("", "b1"), jobs.BatchTombstoneKey("", "b1"), jobs.BatchMappedKey("", "b1", "i"), jobs.KeptAnswersKey("", "b1", "i"), jobs.BatchFeedKey("", "b1"), jobs.BatchFeedLockKey("", "b1"), jobs.BatchRecordedKey("", "b1"), jobs.BatchSpillLockKey("", "b1")},
		"legal": {jobs.TenantSpendKey("", "legal", "2026-11-25"), jobs.TenantSpendKey("", "legal", "2026-11")},
		"inbox": {jobs.WatchStateKey("", "inbox"), jobs.WatchSeenKey("", "inbox"), jobs.WatchLeaseKey("", "inbox")},
		quota:   {jobs.FairShareLeasesKey(quota), jobs.FairShareWaitersKey(quota), jobs.FairShareActiveKey(quota), jobs.FairShareWeightsKey(quota)},
		group: {jobs.BatchModeRequestKey(group, "r"), jobs.BatchModeWaitersKey(group, "r"), jobs.BatchModePendingKey(group),
			jobs.BatchModeJobKey(group, "j"), jobs.BatchModeJobMetaKey(group, "j"), jobs.BatchModeJobDoneKey(group, "j"), jobs.BatchModeFailKey(group, "collect"), jobs.BatchModeCollectLockKey(group)},
	}
	for tag, keys := range groups {
		for _, k := range keys {
			if got := hashTag(k); got != tag {
				t.Errorf("%s hashes on %q, want %q", k, got, tag)
			}
		}
	}
}

// keysFile parses keys.go and returns its exported functions and the
// layout table in DefaultPrefix's comment (function name → row).
func keysFile(t *testing.T) (funcs []*ast.FuncDecl, layout map[string]string) {
	t.Helper()
	f, err := parser.ParseFile(token.NewFileSet(), "keys.go", nil, parser.ParseComments)
	if err != nil {
		t.Fatal(err)
	}
	layout = map[string]string{}
	for _, d := range f.Decls {
		switch d := d.(type) {
		case *ast.FuncDecl:
			if d.Recv == nil && d.Name.IsExported() {
				funcs = append(funcs, d)
			}
		case *ast.GenDecl:
			for _, s := range d.Specs {
				vs, ok := s.(*ast.ValueSpec)
				if !ok || !slices.ContainsFunc(vs.Names, func(n *ast.Ident) bool { return n.Name == "DefaultPrefix" }) {
					continue
				}
				doc := vs.Doc
				if doc == nil {
					doc = d.Doc
				}
				for line := range strings.Lines(doc.Text()) {
					if fields := strings.Fields(line); len(fields) > 0 && strings.HasPrefix(line, "\t") {
						layout[fields[0]] = strings.TrimSpace(line)
					}
				}
			}
		}
	}
	if len(funcs) == 0 || len(layout) == 0 {
		t.Fatal("keys.go: no key functions or no layout table in DefaultPrefix's comment")
	}
	return funcs, layout
}

// Every key function says what its key holds, who writes it and how long it
// lives, is in the layout table with a lifetime, and is pinned above.
func TestKeysDocumented(t *testing.T) {
	funcs, layout := keysFile(t)
	pinned := map[string]bool{}
	for _, c := range keyCases() {
		pinned[c.fn] = true
	}
	names := map[string]bool{}
	for _, fn := range funcs {
		name := fn.Name.Name
		names[name] = true
		doc := ""
		if fn.Doc != nil {
			doc = fn.Doc.Text()
		}
		for _, label := range []string{"Written by:", "Lifetime:"} {
			i := strings.Index(doc, label)
			if i < 0 || len(strings.Fields(doc[i+len(label):])) == 0 {
				t.Errorf("keys.go: %s's comment has no %q line", name, label)
			}
		}
		if i := strings.Index(doc, "Written by:"); i < 5 {
			t.Errorf("keys.go: %s's comment does not say what the key holds before \"Written by:\"", name)
		}
		// function, key, type and at least one word of lifetime.
		if row, ok := layout[name]; !ok || len(strings.Fields(row)) < 4 {
			t.Errorf("keys.go: %s is not in the layout table of DefaultPrefix's comment with its key, type and lifetime", name)
		}
		if !pinned[name] {
			t.Errorf("keys.go: %s's output is not pinned in keyCases", name)
		}
	}
	for name := range pinned {
		if !names[name] {
			t.Errorf("keyCases pins %s, which keys.go does not define", name)
		}
	}
	for name := range layout {
		if name != "function" && !names[name] {
			t.Errorf("the layout table lists %s, which keys.go does not define", name)
		}
	}
}

// No package builds a key keys.go owns by hand.
func TestKeysBuiltOnlyInJobs(t *testing.T) {
	// keyFragments are the distinctive parts of the key layouts keys.go owns. A
	// string literal holding one, outside keys.go, is a key built by hand.
	keyFragments := map[string]string{
		":batch:{":     "BatchKey and the keys beside it",
		":batches":     "BatchesKey, TenantBatchesKey",
		":content:":    "ContentResultKey, ContentClaimKey",
		":tenants:{":   "TenantSpendKey",
		":watch:{":     "WatchStateKey, WatchSeenKey, WatchLeaseKey",
		":processing":  "WatchEventsProcessingKey",
		":rpm":         "RequestRateKey",
		":tpm":         "TokenRateKey",
		":hold":        "ProviderHoldKey",
		":fair:":       "FairShareLeasesKey and the keys beside it",
		":bm:{":        "BatchModeRequestKey and the keys beside it",
		":scheduler:":  "SchedulerLeaderKey",
		":idempotency": "IdempotencyKey",
		":llm:":        "ModelQuotaName",
	}

	root, err := filepath.Abs("..")
	if err != nil {
		t.Fatal(err)
	}
	self, err := filepath.Abs("keys.go")
	if err != nil {
		t.Fatal(err)
	}
	err = filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			if path != root && (strings.HasPrefix(d.Name(), ".") || d.Name() == "testdata" || d.Name() == "vendor") {
				return filepath.SkipDir
			}
			return nil
		}
		if !strings.HasSuffix(path, ".go") || strings.HasSuffix(path, "_test.go") || path == self {
			return nil
		}
		fset := token.NewFileSet()
		f, err := parser.ParseFile(fset, path, nil, parser.SkipObjectResolution)
		if err != nil {
			return err
		}
		ast.Inspect(f, func(n ast.Node) bool {
			lit, ok := n.(*ast.BasicLit)
			if !ok || lit.Kind != token.STRING {
				return true
			}
			s, err := strconv.Unquote(lit.Value)
			if err != nil {
				return true
			}
			for frag, use := range keyFragments {
				if strings.Contains(s, frag) {
					rel, _ := filepath.Rel(root, fset.Position(lit.Pos()).Filename)
					t.Errorf("%s:%d builds a Redis key by hand (%q): use jobs.%s", rel, fset.Position(lit.Pos()).Line, frag, use)
				}
			}
			return true
		})
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// The keys a script or transaction writes together hash to one Redis
// Cluster slot (asked of the test cluster: CLUSTER KEYSLOT), or Cluster
// answers CROSSSLOT.
func TestKeysWrittenTogetherShareASlot(t *testing.T) {
	opt, err := redisconn.ParseURL(jobstest.ClusterURL(t))
	if err != nil {
		t.Fatal(err)
	}
	rdb := opt.MakeRedisClient().(*redis.ClusterClient)
	defer rdb.Close()
	const p, b, i, ten, w, q, g = "pfx", "20261207-batch", "item1", "legal", "inbox", "llamapipe:llm:groq:llama", "groq-llama"
	groups := map[string][]string{
		"batch (recordScript, expireScript, modelCallScript, chunks)": {jobs.BatchKey(p, b), jobs.BatchItemsKey(p, b), jobs.BatchProgressKey(p, b),
			jobs.BatchTombstoneKey(p, b), jobs.BatchSeriesKey(p, b), jobs.BatchMappedKey(p, b, i), jobs.KeptAnswersKey(p, b, i), jobs.BatchRecordedKey(p, b), jobs.BatchSpillLockKey(p, b)},
		"content (StoreResult)":           {jobs.ContentResultKey(p, ten, "c0ffee"), jobs.ContentClaimKey(p, ten, "c0ffee")},
		"content without tenant":          {jobs.ContentResultKey(p, "", "c0ffee"), jobs.ContentClaimKey(p, "", "c0ffee")},
		"tenant spend (Ledger.Charge)":    {jobs.TenantSpendKey(p, ten, "2026-12-07"), jobs.TenantSpendKey(p, ten, "2026-12")},
		"watch (watch.Watcher)":           {jobs.WatchStateKey(p, w), jobs.WatchSeenKey(p, w), jobs.WatchLeaseKey(p, w)},
		"fair share (its acquire script)": {jobs.FairShareLeasesKey(q), jobs.FairShareWaitersKey(q), jobs.FairShareActiveKey(q), jobs.FairShareWeightsKey(q)},
		"batch mode": {jobs.BatchModeRequestKey(g, "r1"), jobs.BatchModeWaitersKey(g, "r1"), jobs.BatchModePendingKey(g),
			jobs.BatchModeJobKey(g, "j1"), jobs.BatchModeJobMetaKey(g, "j1"), jobs.BatchModeJobDoneKey(g, "j1")},
	}
	ctx := context.Background()
	for what, keys := range groups {
		want := rdb.ClusterKeySlot(ctx, keys[0])
		if want.Err() != nil {
			t.Fatal(want.Err())
		}
		for _, k := range keys[1:] {
			if s := rdb.ClusterKeySlot(ctx, k).Val(); s != want.Val() {
				t.Errorf("%s: %s is in slot %d, %s in %d", what, keys[0], want.Val(), k, s)
			}
		}
	}
}
