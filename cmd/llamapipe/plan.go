package main

import (
	"bytes"
	"context"
	"fmt"
	"image"
	_ "image/gif" // image headers for planning
	_ "image/jpeg"
	_ "image/png"
	"io"
	"os"
	"path/filepath"
	"sort"
	"sync"
	"text/tabwriter"

	"github.com/urfave/cli/v3"
	_ "golang.org/x/image/bmp"
	_ "golang.org/x/image/tiff"
	_ "golang.org/x/image/webp"

	"github.com/llamapipe/llamapipe/ingest"
	"github.com/llamapipe/llamapipe/ingest/pdfsplit"
	"github.com/llamapipe/llamapipe/jobs"
	"github.com/llamapipe/llamapipe/storage"
	"github.com/llamapipe/llamapipe/worker"
	"github.com/llamapipe/llamapipe/worker/chunk"
	"github.com/llamapipe/llamapipe/worker/extract"
	"github.com/llamapipe/llamapipe/worker/llm"
)

// Planning assumptions, in tokens. They are estimates, and the report after
// a run has the real numbers.
const (
	planTokensPerPDFPage  = 550  // a dense contract page
	planPromptTokens      = 500  // instructions and schema of one request
	planSummaryOutput     = 1500 // a contract digest
	planMapOutput         = 700  // the facts of one chunk
	planCaptionOutput     = 350  // one caption JSON
	planImageHeaderMaxLen = 256 << 10
)

// estimate is what one item is expected to cost.
type estimate struct {
	kind     string
	pages    int
	images   int
	requests int
	usage    llm.Usage
	skip     string
}

func planCommand(stdout, stderr io.Writer) *cli.Command {
	return &cli.Command{
		Name:      "plan",
		Usage:     "list what a run would do — items by kind, pages, images, estimated tokens and cost — without sending anything",
		ArgsUsage: "SRC... (folders or s3://bucket/prefix)",
		Flags: concat(batchFlags(), providerFlags(), []cli.Flag{
			&cli.StringFlag{Name: "pdf-passwords", Usage: "JSON file {\"key or file name\": \"password\"} for encrypted PDFs", Sources: env("PDF_PASSWORDS")},
			&cli.IntFlag{Name: "image-max-side", Value: 1344, Usage: "long side of images sent to the model, in pixels", Sources: env("IMAGE_MAX_SIDE")},
			promptFlag(),
		}),
		Action: func(ctx context.Context, cmd *cli.Command) error {
			sources, err := needArgs(cmd, "source")
			if err != nil {
				return err
			}
			prof, err := plannedProfile(cmd)
			if err != nil {
				return err
			}
			if err := checkTaskForModel(cmd.String("task"), prof); err != nil {
				return err
			}
			passwords, err := readSecretMap(cmd.String("pdf-passwords"))
			if err != nil {
				return &exitError{code: exitUsage, msg: "--pdf-passwords: " + err.Error()}
			}
			o, err := ingestOptions(cmd, sources, prof)
			if err != nil {
				return err
			}
			if o.Out == "" {
				// Planning writes nothing: any location that is not a source,
				// and without an output there are no earlier results to keep.
				o.Out = filepath.Join(os.TempDir(), "llamapipe-plan-writes-nothing")
				o.Force = true
			}
			budget := worker.TextBudget(prof, cmd.Int("max-output-tokens"))
			maxSide := cmd.Int("image-max-side")
			var mu sync.Mutex
			var ests []estimate
			in := &ingest.Ingester{Open: opener(cmd)}
			total, err := in.Scan(ctx, o, func(it ingest.Item) error {
				e := planItem(ctx, it, budget, maxSide, passwords)
				mu.Lock()
				ests = append(ests, e)
				mu.Unlock()
				return nil
			})
			if err != nil {
				return err
			}
			printPlan(stdout, prof, total, ests)
			return nil
		},
	}
}

func planItem(ctx context.Context, it ingest.Item, budget, maxSide int, passwords map[string]string) estimate {
	e := estimate{kind: it.Kind, skip: it.Skip}
	if it.Unchanged {
		e.skip = "unchanged since the last run (results kept)"
	}
	if it.Skip != "" {
		return e
	}
	switch it.Kind {
	case jobs.KindImage:
		w, h := imageSize(ctx, it)
		if m := max(w, h); m > maxSide && maxSide > 0 {
			w, h = w*maxSide/m, h*maxSide/m
		}
		img := llm.EstimateImageTokens(w, h)
		e.images, e.requests = 1, 1
		e.usage = llm.Usage{InputTokens: img + planPromptTokens, ImageTokens: img, OutputTokens: planCaptionOutput}
	case jobs.KindDocument:
		tokens, pages, err := documentTokens(ctx, it, passwords)
		if err != nil {
			e.skip = "would fail: " + err.Error()
			return e
		}
		e.pages = pages
		if tokens <= budget {
			e.requests = 1
			e.usage = llm.Usage{InputTokens: tokens + planPromptTokens, OutputTokens: planSummaryOutput}
			break
		}
		chunks := (tokens + budget - 1) / budget
		reduces := 1 + chunks*planMapOutput/budget
		e.requests = chunks + reduces
		e.usage = llm.Usage{
			InputTokens:  tokens + chunks*planPromptTokens + chunks*planMapOutput + reduces*planPromptTokens,
			OutputTokens: chunks*planMapOutput + reduces*planSummaryOutput,
		}
	}
	e.usage.Estimated = true
	return e
}

func readAll(ctx context.Context, st storage.Store, key string, limit int64) ([]byte, error) {
	rc, err := st.Get(ctx, key, nil)
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	return io.ReadAll(io.LimitReader(rc, limit))
}

// imageSize reads an image's dimensions from its header, fetching more than
// the sniffed head when the header is further in (large EXIF blocks).
func imageSize(ctx context.Context, it ingest.Item) (int, int) {
	if cfg, _, err := image.DecodeConfig(bytes.NewReader(it.Head)); err == nil {
		return cfg.Width, cfg.Height
	}
	rc, err := it.Store.Get(ctx, it.Ref.Key, &storage.Range{Length: planImageHeaderMaxLen})
	if err != nil {
		return 0, 0
	}
	defer rc.Close()
	if cfg, _, err := image.DecodeConfig(rc); err == nil {
		return cfg.Width, cfg.Height
	}
	return 0, 0
}

// documentTokens estimates a document's text tokens (and pages for PDFs).
func documentTokens(ctx context.Context, it ingest.Item, passwords map[string]string) (int, int, error) {
	data, err := readAll(ctx, it.Store, it.Ref.Key, it.Ref.Size+1)
	if err != nil {
		return 0, 0, err
	}
	var text string
	switch it.Type {
	case "pdf":
		pw := ""
		for _, k := range []string{it.Ref.URL(), it.Ref.Key} {
			if p, ok := passwords[k]; ok {
				pw = p
			}
		}
		info, err := pdfsplit.Inspect(data, pw)
		if err != nil {
			return 0, 0, err
		}
		return info.Pages * planTokensPerPDFPage, info.Pages, nil
	case "docx":
		text, err = extract.DOCX(data, extract.Limits{})
	case "html":
		text, err = extract.HTML(data)
	default:
		text, err = extract.Text(data)
	}
	if err != nil {
		return 0, 0, err
	}
	return chunk.EstimateTokens(text), 0, nil
}

func printPlan(w io.Writer, prof llm.Profile, total int, ests []estimate) {
	type row struct {
		items, pages, images, requests int
		in, out, img                   int64
	}
	rows := map[string]*row{}
	skips := map[string]int{}
	var all row
	for _, e := range ests {
		if e.skip != "" {
			skips[e.skip]++
			continue
		}
		r := rows[e.kind]
		if r == nil {
			r = &row{}
			rows[e.kind] = r
		}
		for _, x := range []*row{r, &all} {
			x.items++
			x.pages += e.pages
			x.images += e.images
			x.requests += e.requests
			x.in += int64(e.usage.InputTokens)
			x.out += int64(e.usage.OutputTokens)
			x.img += int64(e.usage.ImageTokens)
		}
	}
	cost := func(r *row) float64 {
		return prof.Prices.Cost(llm.Usage{InputTokens: int(r.in), OutputTokens: int(r.out), ImageTokens: int(r.img)})
	}
	fmt.Fprintf(w, "Plan for %s (%s): %d items, %d to process, %d skipped\n\n", prof.Model, prof.Provider, total, all.items, total-all.items)
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', tabwriter.AlignRight)
	batch := prof.Prices.BatchDiscount > 0
	header := "kind\titems\tpages\timages\trequests\test. input tokens\test. output tokens\test. cost\t"
	if batch {
		header += "batch API cost\t"
	}
	fmt.Fprintln(tw, header)
	kinds := make([]string, 0, len(rows))
	for k := range rows {
		kinds = append(kinds, k)
	}
	sort.Strings(kinds)
	line := func(name string, r *row) {
		s := fmt.Sprintf("%s\t%d\t%d\t%d\t%d\t%d\t%d\t%s\t", name, r.items, r.pages, r.images, r.requests, r.in, r.out, money(cost(r), prof.Prices.Currency))
		if batch {
			s += money(cost(r)*prof.Prices.BatchDiscount, prof.Prices.Currency) + "\t"
		}
		fmt.Fprintln(tw, s)
	}
	for _, k := range kinds {
		line(k, rows[k])
	}
	line("all", &all)
	_ = tw.Flush()
	if len(skips) > 0 {
		fmt.Fprintln(w, "\nSkipped:")
		reasons := make([]string, 0, len(skips))
		for r := range skips {
			reasons = append(reasons, r)
		}
		sort.Strings(reasons)
		for _, r := range reasons {
			fmt.Fprintf(w, "  %4d  %s\n", skips[r], r)
		}
	}
	if prof.Prices.InputPerMillion == 0 && prof.Prices.OutputPerMillion == 0 {
		fmt.Fprintln(w, "\nThis profile has no prices: set them in a --profiles YAML file to see costs.")
	}
	fmt.Fprintln(w, "\nToken counts are estimates (pages × 550 for PDFs, text length for other documents, Llama 4 tiles for images); the report after a run has the real ones.")
}

func money(v float64, currency string) string {
	if currency == "" {
		return fmt.Sprintf("%.4f", v)
	}
	return fmt.Sprintf("%.4f %s", v, currency)
}
