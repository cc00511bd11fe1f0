package jobs

import "time"

// This file is llamapipe's whole Redis layout: every key the project writes
// is built by one function here, whose comment says what the key holds, who
// writes it and how long it lives. Callers never format keys themselves.
// asynq (queues, tasks, leases: asynq:{queue}:…) and go-redis/redis_rate
// (rate:<name>) keep their own keys; what llamapipe names for them is here.
//
// Keys that belong together share a Redis Cluster hash tag ({…}), so the
// scripts that touch several of them run on Cluster too. The tags are part
// of the stored layout: moving one would orphan the data already in users'
// Redis, so every string here is pinned by keys_test.go.

// DefaultPrefix namespaces the keys of a component given no prefix
// (NewTracker, tenants.NewLedger, watch.Config.Prefix, the API's
// KeyPrefix). The functions below that take a prefix treat "" as
// DefaultPrefix; the others always use it.
//
// The layout at a glance (P is the prefix; B a batch ID, I an item ID, T a
// tenant, W a watch name, G a model group, Q a quota name):
//
//	function                  key                                  type    lifetime
//	BatchKey                  P:batch:{B}                          hash    until finalized, then TTL retention (DefaultRetention 30d)
//	BatchItemsKey             P:batch:{B}:items                    hash    like BatchKey
//	BatchProgressKey          P:batch:{B}:progress                 hash    field deleted when its item is recorded; deleted at finalize
//	BatchSeriesKey            P:batch:{B}:series                   hash    like BatchKey
//	BatchRecordedKey          P:batch:{B}:recorded                 bitmap  like BatchKey
//	BatchSpillLockKey         P:batch:{B}:spill                    string  TTL 2m (SpillLockTTL); deleted by its holder
//	BatchTombstoneKey         P:batch:{B}:tombstone                hash    TTL retention + TombstoneTTL (1y)
//	BatchFeedKey              P:batch:{B}:feed                     hash    TTL 30d (FeedTTL), renewed by every write
//	BatchFeedLockKey          P:batch:{B}:feed:lock                string  TTL 2m (FeedLockTTL); deleted by its holder
//	BatchMappedKey            P:batch:{B}:mapped:I                 set     TTL 7d (MappedTTL); deleted at reduce
//	KeptAnswersKey            P:batch:{B}:kept:I                   hash    TTL 7d (KeptAnswerTTL); deleted when I is recorded
//	BatchesKey                P:batches                            zset    members trimmed past retention; TTL ≥ retention, renewed
//	TenantBatchesKey          P:tenant:T:batches                   zset    like BatchesKey
//	ContentResultKey          P:content:[T:]<content key>          string  TTL 30d (ContentResultTTL)
//	ContentClaimKey           {P:content:[T:]<content key>}:claim  string  TTL 10m (ContentClaimTTL); deleted when stored
//	TenantSpendKey            P:tenants:{T}:spend:<period>         hash    TTL 3d / 40d (SpendDayTTL, SpendMonthTTL)
//	WatchStateKey             P:watch:{W}                          hash    TTL retention, renewed by every write
//	WatchSeenKey              P:watch:{W}:seen                     hash    TTL retention, renewed; field deleted when its object goes
//	WatchLeaseKey             P:watch:{W}:lease                    string  TTL 30s renewed (LeaseTTL)
//	WatchEventsProcessingKey  <events list>:processing             list    live queue
//	SchedulerLeaderKey        llamapipe:scheduler:leader           string  TTL 30s renewed (LeaseTTL)
//	IdempotencyKey            P:api:idempotency:T:<key>            string  TTL 1h reserved, 24h answered
//	ModelQuotaName            llamapipe:llm:<name>:<model>         -       a name, not a key
//	RequestRateKey            Q:rpm (redis_rate: rate:Q:rpm)       string  TTL ≤ 1m (redis_rate)
//	TokenRateKey              Q:tpm (redis_rate: rate:Q:tpm)       string  TTL ≤ 1m (redis_rate)
//	ProviderHoldKey           Q:hold                               string  TTL = the hold
//	ProviderOutageKey         Q:outage                             hash    TTL = cool-down / down time
//	ProvidersDownKey          llamapipe:llm:down                   zset    members past their until trimmed; TTL = the last until
//	FairShareLeasesKey        {Q}:fair:leases                      zset    live gate
//	FairShareWaitersKey       {Q}:fair:waiters                     zset    live gate
//	FairShareActiveKey        {Q}:fair:active                      zset    live gate
//	FairShareWeightsKey       {Q}:fair:weights                     hash    live gate
//	BatchModeRequestKey       llamapipe:bm:{G}:r:<request>         hash    TTL 10d renewed (BatchModeRequestTTL)
//	BatchModeWaitersKey       llamapipe:bm:{G}:waiters:<request>   hash    TTL 10d renewed (BatchModeRequestTTL)
//	BatchModePendingKey       llamapipe:bm:{G}:pending             set     live queue
//	BatchModeJobKey           llamapipe:bm:{G}:job:<job>           set     TTL 8d (BatchModeJobTTL)
//	BatchModeJobMetaKey       llamapipe:bm:{G}:jobmeta:<job>       string  TTL 8d (BatchModeJobTTL)
//	BatchModeJobDoneKey       llamapipe:bm:{G}:jobdone:<job>       string  TTL 8d (BatchModeJobTTL)
//	BatchModeCollectLockKey   llamapipe:bm:{G}:collecting          string  TTL 30m (BatchModeCollectLockTTL)
//	BatchModeFailKey          llamapipe:bm:{G}:fail:<what>         hash    TTL 8d (BatchModeJobTTL)
const DefaultPrefix = "llamapipe"

// Lifetimes of the keys that expire.
const (
	// MappedTTL is how long a long document's set of mapped chunks is kept
	// in Redis (the reduce deletes it when it records the item).
	MappedTTL = 7 * 24 * time.Hour
	// KeptAnswerTTL is how long an item's model answers are kept in Redis
	// waiting for their result (the worker deletes them once it records
	// the item).
	KeptAnswerTTL = 7 * 24 * time.Hour
	// ContentResultTTL is how long a result is kept by content for reuse
	// (captions of identical images).
	ContentResultTTL = 30 * 24 * time.Hour
	// ContentClaimTTL bounds how long one item computes a content key's
	// result while identical items wait for it.
	ContentClaimTTL = 10 * time.Minute
	// SpendDayTTL and SpendMonthTTL: a tenant's day and month spend outlive
	// their period by this much (a late report still reads them).
	SpendDayTTL   = 3 * 24 * time.Hour
	SpendMonthTTL = 40 * 24 * time.Hour
	// LeaseTTL is the TTL of a lease key (the scheduler's, a watch's); its
	// holder renews it every third of it.
	LeaseTTL = 30 * time.Second
	// IdempotencyTTL is how long the API remembers an Idempotency-Key's
	// answer; IdempotencyReserveTTL how long a first request still running
	// holds the key.
	IdempotencyTTL        = 24 * time.Hour
	IdempotencyReserveTTL = time.Hour
	// BatchModeRequestTTL bounds how long a batch-mode request's records
	// live: past a provider's window (24 h) and any wait for it, with room
	// to spare. Every state change renews it.
	BatchModeRequestTTL = 10 * 24 * time.Hour
	// BatchModeJobTTL is how long a submitted provider job's records live.
	BatchModeJobTTL = 8 * 24 * time.Hour
	// DefaultRetention is how long a finalized batch's records (BatchKey,
	// BatchItemsKey) are kept when the worker is given no retention
	// (finalize.Config.Retention, `--retention`); also the least TTL of the
	// batch indexes and a watch's state.
	DefaultRetention = 30 * 24 * time.Hour
	// TombstoneTTL is how much longer than its records a batch's tombstone
	// lives, so that its ID is answered "expired" rather than unknown.
	TombstoneTTL = 365 * 24 * time.Hour
	// LostTTL is how long the mark left by a worker that found its batch's
	// record gone (BatchKey holding only "lost") is kept.
	LostTTL = 7 * 24 * time.Hour
)

// ns returns prefix, or DefaultPrefix when it is empty.
func ns(prefix string) string {
	if prefix == "" {
		return DefaultPrefix
	}
	return prefix
}

// Batch records (Tracker). A batch's keys share the tag {B}.

// BatchKey is a batch's record, a hash: meta (the Batch as JSON), sealed
// and total, the counters (done, failed, skipped, cancelled, input_tokens,
// output_tokens, cost), cancelled_at, fatal, finalized and finished_ms,
// webhook and webhook_attempts, spilled_pages and spilled_entries (jobs/spill).
// A hash holding "lost" and no meta marks a batch whose record vanished
// (Redis lost data) while a worker still recorded one of its items.
// Written by: Tracker — ingest (Create, Seal), workers (Record, SetFatal,
// MarkFinalized, the webhook's fields, Spill), cancel (Cancel), finalize (Expire).
// Lifetime: no TTL while the batch runs; once finalized, TTL the
// retention (finalize.Config.Retention, DefaultRetention 30 days), set by
// Tracker.Expire. A "lost" mark: TTL LostTTL (7 days).
func BatchKey(prefix, batch string) string { return ns(prefix) + ":batch:{" + batch + "}" }

// BatchItemsKey is a batch's manifest, a hash: item ID → its final Entry
// (JSON). The first entry recorded for an item wins. Fields "~listed:N"
// hold the entries listing chunk N ended without queuing (JSONL, one
// write a chunk: Tracker.RecordListed).
// Written by: Tracker.Record (workers, ingest for skipped items, cancel),
// Tracker.RecordListed (ingest, bounded batches); Tracker.Spill deletes
// a bounded batch's finished entries a page at a time (jobs/spill).
// Lifetime: like BatchKey: no TTL while the batch runs, TTL the retention
// once finalized (Tracker.Expire).
func BatchItemsKey(prefix, batch string) string { return BatchKey(prefix, batch) + ":items" }

// BatchRecordedKey is a bounded batch's bitmap of recorded items: bit Seq
// (Entry.Seq, 1-based) is set when the item's entry is first recorded, so
// an item whose entry was spilled out of BatchItemsKey (jobs/spill) is
// still known recorded (Record counts it once, Recorded answers true).
// Written by: Tracker.Record and RecordMany (the record script).
// Lifetime: like BatchKey (TTL the retention, set by Tracker.Expire).
func BatchRecordedKey(prefix, batch string) string { return BatchKey(prefix, batch) + ":recorded" }

// BatchSpillLockKey is a string, its holder's ID: held by the one worker
// moving a page of a batch's finished entries to its work area (jobs/spill).
// Written by: worker (lease.TryAcquire). Lifetime: TTL SpillLockTTL (2
// minutes); deleted by its holder.
func BatchSpillLockKey(prefix, batch string) string { return BatchKey(prefix, batch) + ":spill" }

// SpillLockTTL: see BatchSpillLockKey.
const SpillLockTTL = 2 * time.Minute

// BatchSeriesKey is a batch's per-minute counts for the dashboard's charts,
// a hash: "<unix minute>:<field>" → a sum, in the minute of Redis's clock
// when it happened. Fields done|failed|skipped|cancelled|cost count the
// items recorded; model_calls|model_ms|model_errors count the online model
// calls that were sent (their summed duration; those that failed).
// Written by: Tracker.Record and RecordMany (the record script), and
// Tracker.CountModelCall (workers, after each model call; only while the
// batch's record has its meta).
// Lifetime: like BatchKey (TTL the retention, set by Tracker.Expire; a
// call counted after that copies the batch key's TTL).
func BatchSeriesKey(prefix, batch string) string { return BatchKey(prefix, batch) + ":series" }

// BatchProgressKey holds a batch's running items' progress, a hash: item ID
// → Progress (JSON).
// Written by: Tracker.SetProgress and SetProgressUnlessRecorded (workers).
// Lifetime: no TTL; an item's field is deleted when its entry is recorded,
// and Redis drops the hash when its last field goes; Tracker.Expire
// deletes what is left when the batch is finalized.
func BatchProgressKey(prefix, batch string) string { return BatchKey(prefix, batch) + ":progress" }

// BatchTombstoneKey says a batch existed after its records are gone, a
// hash: state ("created", then "finalized"), tenant and finished_ms. A
// batch ID whose BatchKey is gone is answered "expired" when its tombstone
// says finalized, "lost" when it says created (the record vanished before
// the batch ended: Redis lost data).
// Written by: Tracker.Create (ingest), Tracker.Expire (finalize).
// Lifetime: TTL DefaultRetention + TombstoneTTL from Create; the
// retention + TombstoneTTL (1 year) from finalize.
func BatchTombstoneKey(prefix, batch string) string { return BatchKey(prefix, batch) + ":tombstone" }

// BatchFeedKey is a bounded batch's feed (Spec.MaxQueued), a hash: the
// listing's cursor (source, key, listed) and the items of those objects
// (items: attachments included), the pages of items written to its work
// area (pages, done), the next item to queue (next, offset), the items
// handed to the queue (handed) and recorded by ingest (by_ingest).
// Written by: ingest (Run, TopUp; TopUp runs in workers).
// Lifetime: TTL FeedTTL (30 days), renewed by every write.
func BatchFeedKey(prefix, batch string) string { return BatchKey(prefix, batch) + ":feed" }

// BatchFeedLockKey is a string, a random token: held by the one TopUp
// feeding a batch at a time.
// Written by: feed.Store.Lock (TopUp, in workers).
// Lifetime: TTL FeedLockTTL (2 minutes); deleted by its holder.
func BatchFeedLockKey(prefix, batch string) string { return BatchFeedKey(prefix, batch) + ":lock" }

// FeedTTL and FeedLockTTL: see BatchFeedKey and BatchFeedLockKey.
const (
	FeedTTL     = 30 * 24 * time.Hour
	FeedLockTTL = 2 * time.Minute
)

// BatchMappedKey is the set of a long document's chunk indices whose map
// answers are written.
// Written by: Tracker.MarkMapped (map tasks).
// Lifetime: TTL MappedTTL (7 days), renewed by every mark; deleted by
// Tracker.ClearMapped once the reduce recorded the item.
func BatchMappedKey(prefix, batch, item string) string {
	return BatchKey(prefix, batch) + ":mapped:" + item
}

// KeptAnswersKey holds an item's model answers that wait for their result
// to be stored, a hash: request name → answer (JSON, up to 256 KB; a map
// answer only when the work area cannot take it); and "sends:<task
// ID>" → the reasons ("http_503,timeout") of the task's model sends that
// failed and are re-sent by its retry, for the traces (worker/traced.go).
// Written by: Tracker.KeepAnswer (workers).
// Lifetime: TTL KeptAnswerTTL (7 days), renewed by every answer kept;
// deleted by Tracker.DropKeptAnswers once the item is recorded.
func KeptAnswersKey(prefix, batch, item string) string {
	return BatchKey(prefix, batch) + ":kept:" + item
}

// BatchesKey indexes every batch, a sorted set: batch ID scored by its
// creation time in ms.
// Written by: Tracker.Create (ingest), Tracker.Expire (finalize).
// Lifetime: a zset member cannot expire, so every finalize removes the
// members created longer than the retention ago (ZREMRANGEBYSCORE); the
// key's TTL is raised to at least the retention by every Create and
// finalize, so an index nobody writes goes away with its last records.
func BatchesKey(prefix string) string { return ns(prefix) + ":batches" }

// TenantBatchesKey indexes a tenant's batches, a sorted set like
// BatchesKey. It carries no hash tag (it spans batches).
// Written by: Tracker.Create (ingest) for a batch with a tenant,
// Tracker.Expire (finalize).
// Lifetime: like BatchesKey: members trimmed past the retention by each of
// the tenant's finalizes, TTL at least the retention, renewed.
func TenantBatchesKey(prefix, tenant string) string {
	return ns(prefix) + ":tenant:" + tenant + ":batches"
}

// Results by content (Tracker). content is a ContentKey.

// ContentResultKey is a result kept by the content it was computed from
// (a string: the result's JSON), so identical inputs are sent to the model
// once, within a batch and across batches of the same tenant. A tenant's
// results are its own (P:content:T:<content key>): one tenant's item never
// reuses, names or learns of another tenant's. A batch without a tenant
// keeps the unscoped key (P:content:<content key>), so caches written
// before tenants keep working. Tenant names hold no ':' (ValidTenant) and
// content keys are hex, so the two forms never meet.
// Written by: Tracker.StoreResult (workers, image captions).
// Lifetime: TTL given by the writer: ContentResultTTL (30 days).
func ContentResultKey(prefix, tenant, content string) string {
	if tenant == "" {
		return ns(prefix) + ":content:" + content
	}
	return ns(prefix) + ":content:" + tenant + ":" + content
}

// ContentClaimKey names the item computing a content key's result (a
// string: the owner), so identical items wait for it instead of calling
// the model too.
// Written by: Tracker.ClaimResult (workers).
// Lifetime: TTL given by the writer: ContentClaimTTL (10 minutes); deleted
// when the result is stored (StoreResult) or the owner gives up
// (ReleaseClaim).
//
// Its hash tag is the whole of ContentResultKey, so the two are in one
// Redis Cluster slot (StoreResult writes both in one transaction) while
// the result key itself — 30 days of cached results in users' Redis —
// keeps the name it always had. (Before 2026-12 a claim was
// P:content:…:claim, in another slot; a claim lives 10 minutes, so the
// rename loses at most a claim in flight at the upgrade: one more model
// call.)
func ContentClaimKey(prefix, tenant, content string) string {
	return "{" + ContentResultKey(prefix, tenant, content) + "}:claim"
}

// Tenants (tenants.Ledger). A tenant's keys share the tag {T}.

// TenantSpendKey is a tenant's spend in one period, a hash: cost and
// tokens. period is a day (2026-11-25) or a month (2026-11) in the tenants
// file's zone.
// Written by: tenants.Ledger.Charge (workers, when an item is recorded).
// Lifetime: TTL SpendDayTTL (3 days) for a day, SpendMonthTTL (40 days)
// for a month, renewed by every charge.
func TenantSpendKey(prefix, tenant, period string) string {
	return ns(prefix) + ":tenants:{" + tenant + "}:spend:" + period
}

// Watched inboxes (ingest/watch). A watch's keys share the tag {W}.

// WatchStateKey is a watch's current rolling batch, a hash: batch,
// period, seq and count.
// Written by: watch.Watcher.
// Lifetime: TTL the watch's retention (watch.Config.Retention,
// DefaultRetention 30 days), renewed by every write: a watch removed or
// idle that long forgets its state. Its batch and count fields are
// deleted when the batch is sealed.
func WatchStateKey(prefix, name string) string { return ns(prefix) + ":watch:{" + name + "}" }

// WatchSeenKey is what a watch has seen, a hash: object ID → ETag, state
// and batch (tab-separated).
// Written by: watch.Watcher.
// Lifetime: TTL the watch's retention, renewed by every write, like
// WatchStateKey; an object's field is deleted when a listing no longer
// finds the object.
func WatchSeenKey(prefix, name string) string { return WatchStateKey(prefix, name) + ":seen" }

// WatchLeaseKey is the lease of a watch's one running watcher (a string:
// the holder, lease.Holder).
// Written by: lease.Acquire, for watch.Watcher.
// Lifetime: TTL LeaseTTL (30 s), renewed by its holder every third of it;
// deleted when the holder stops.
func WatchLeaseKey(prefix, name string) string { return WatchStateKey(prefix, name) + ":lease" }

// WatchEventsProcessingKey holds the S3 event messages a watcher took from
// MinIO's event list (list, the list MinIO writes: configured by the user,
// and not ours) and has not finished handling, so a crash loses none.
// Written by: watch.RedisList (BLMOVE from list).
// Lifetime: live queue: a message is removed once handled.
func WatchEventsProcessingKey(list string) string { return list + ":processing" }

// Scheduler and API.

// SchedulerLeaderKey is the scheduler's lease: one scheduler enqueues,
// others stand by (a string: the holder, lease.Holder). It ignores any
// prefix: always under DefaultPrefix.
// Written by: lease.Acquire, for `llamapipe scheduler`.
// Lifetime: TTL LeaseTTL (30 s), renewed by its holder every third of it;
// deleted when the holder stops.
func SchedulerLeaderKey() string { return DefaultPrefix + ":scheduler:leader" }

// IdempotencyKey is what the API's Idempotency-Key header key of tenant
// maps to (a string: the request, the reserved batch ID and, once
// answered, the response, as JSON).
// Written by: the HTTP API's submit and retry.
// Lifetime: TTL IdempotencyReserveTTL (1 hour) while the first request
// runs, then IdempotencyTTL (24 hours) once answered; deleted when the
// first request fails.
func IdempotencyKey(prefix, tenant, key string) string {
	return ns(prefix) + ":api:idempotency:" + tenant + ":" + key
}

// Model calls (worker/llm/ratelimit). A quota name Q names one provider's
// model, shared by every worker calling it.

// ModelQuotaName is the default quota name of a model: the name its shared
// rate limits and fair-share gate are kept under. name is the preset, or
// the provider when there is none.
// Written by: none itself; the keys below are built from it.
// Lifetime: none: a name, not a key.
func ModelQuotaName(name, model string) string { return DefaultPrefix + ":llm:" + name + ":" + model }

// RequestRateKey is the name of a quota's requests-per-minute bucket that
// go-redis/redis_rate keeps (as rate:<this>, a GCRA timestamp).
// Written by: ratelimit.Wrap (every model call, through redis_rate).
// Lifetime: TTL set by redis_rate: until the bucket is full again (at most
// a minute).
func RequestRateKey(quota string) string { return quota + ":rpm" }

// TokenRateKey is the name of a quota's tokens-per-minute bucket that
// go-redis/redis_rate keeps (as rate:<this>, a GCRA timestamp).
// Written by: ratelimit.Wrap (every model call, through redis_rate).
// Lifetime: TTL set by redis_rate: until the bucket is full again (at most
// a minute).
func TokenRateKey(quota string) string { return quota + ":tpm" }

// ProviderHoldKey: when the provider's limits let quota's next call go (Unix
// ms). Written by: ratelimit.Learn after each call. Lifetime: TTL = the hold.
func ProviderHoldKey(quota string) string { return quota + ":hold" }

// ProviderOutageKey: quota's outage for fallback chains (failures in a row; once down: until (ms),
// since (ms), provider, kind, model, reason; see jobs/outage).
// Written by: ratelimit.Outages. Lifetime: TTL = the cool-down after a failure, the down time once down.
func ProviderOutageKey(quota string) string { return quota + ":outage" }

// ProvidersDownKey indexes the quotas that are down, a sorted set: quota scored by its until (ms).
// Written by: outage.Mark (ratelimit.Outages). Lifetime: members past their until are trimmed by
// each Mark (readers skip them); TTL = the latest until, set by each Mark.
func ProvidersDownKey() string { return DefaultPrefix + ":llm:down" }

// FairShareLeasesKey holds the calls in flight behind a quota's
// fair-share gate, a sorted set: "tenant\nid" scored by the lease's
// expiry in ms. The gate's keys share the tag {Q}.
// Written by: ratelimit.FairShare (its acquire script, and ZREM after the
// call).
// Lifetime: live gate, no TTL: a member leaves when its call ends, or
// expires with its lease (FairShareOptions.LeaseTTL, 10 minutes).
func FairShareLeasesKey(quota string) string { return "{" + quota + "}:fair:leases" }

// FairShareWaitersKey holds the calls waiting for a slot behind a quota's
// fair-share gate, a sorted set like FairShareLeasesKey.
// Written by: ratelimit.FairShare.
// Lifetime: live gate, no TTL: a member leaves when it gets a slot or
// gives up, or expires 3 polls and a second after its last poll.
func FairShareWaitersKey(quota string) string { return "{" + quota + "}:fair:waiters" }

// FairShareActiveKey holds the tenants that called through a quota's
// fair-share gate lately, a sorted set: tenant scored by its last call in
// ms.
// Written by: ratelimit.FairShare.
// Lifetime: live gate, no TTL: a tenant is removed once idle for the
// active window (FairShareOptions.ActiveWindow, 10 s) with nothing in
// flight or waiting.
func FairShareActiveKey(quota string) string { return "{" + quota + "}:fair:active" }

// FairShareWeightsKey holds the shares of the tenants in
// FairShareActiveKey, a hash: tenant → share.
// Written by: ratelimit.FairShare.
// Lifetime: live gate, no TTL: removed with the tenant from
// FairShareActiveKey.
func FairShareWeightsKey(quota string) string { return "{" + quota + "}:fair:weights" }

// Batch mode (the worker's side of provider batch APIs). group names a
// model (preset or provider, and model, made safe for keys and paths); a
// group's keys share the tag {G}. They ignore any prefix: always under
// DefaultPrefix.

func batchModeKey(group string) string { return DefaultPrefix + ":bm:{" + group + "}" }

// BatchModeRequestKey is a batch-mode request, a hash: state, loc (the
// output location its line and answer live in), batch (the first batch
// that asked), trace (the traceparent of the model call that asked first,
// which the collector and poll spans link to) and retried.
// Written by: workers in batch mode (items, collector and poll tasks).
// Lifetime: TTL BatchModeRequestTTL (10 days), renewed by every state
// change.
func BatchModeRequestKey(group, request string) string {
	return batchModeKey(group) + ":r:" + request
}

// BatchModeWaitersKey holds the tasks waiting for a batch-mode request's
// answer, a hash: asynq task ID → its queue.
// Written by: workers in batch mode (a waiting item task adds itself; the
// collector or poll task that runs it again removes it).
// Lifetime: TTL BatchModeRequestTTL (10 days), renewed by every waiter.
func BatchModeWaitersKey(group, request string) string {
	return batchModeKey(group) + ":waiters:" + request
}

// BatchModePendingKey holds a group's requests not yet submitted to the
// provider, a set of request IDs.
// Written by: workers in batch mode (items add, the collector removes).
// Lifetime: live queue, no TTL: a request leaves when it is submitted or
// settled online.
func BatchModePendingKey(group string) string { return batchModeKey(group) + ":pending" }

// BatchModeJobKey holds the requests of one submitted provider job, a set
// of request IDs.
// Written by: the batch-mode collector task.
// Lifetime: TTL BatchModeJobTTL (8 days).
func BatchModeJobKey(group, job string) string { return batchModeKey(group) + ":job:" + job }

// BatchModeJobMetaKey is a submitted provider job as the provider
// described it (a string: batchapi.Job as JSON), for operators.
// Written by: the batch-mode collector task.
// Lifetime: TTL BatchModeJobTTL (8 days).
func BatchModeJobMetaKey(group, job string) string {
	return batchModeKey(group) + ":jobmeta:" + job
}

// BatchModeFailKey counts a collector's ("collect") or job poller's ("poll:<job>")
// failures, a hash: first (Unix ms), count, message. Written by: batch-mode
// collect and poll tasks (deleted on success or give-up). Lifetime: TTL BatchModeJobTTL.
func BatchModeFailKey(group, what string) string {
	return batchModeKey(group) + ":fail:" + what
}

// BatchModeCollectLockKey is held by the one collector of a group that
// runs at a time (a string: the holder), so two collectors never submit
// the same pending requests twice.
// Written by: the batch-mode collector task (SET NX, deleted when it ends).
// Lifetime: TTL BatchModeCollectLockTTL, for a collector that dies holding it.
func BatchModeCollectLockKey(group string) string { return batchModeKey(group) + ":collecting" }

// BatchModeCollectLockTTL bounds a collector's lock (an upload of a large
// input file included).
const BatchModeCollectLockTTL = 30 * time.Minute

// BatchModeJobDoneKey marks a provider job whose answers are all stored
// (a string: "1"), so a repeated poll does not read them again.
// Written by: the batch-mode poll task.
// Lifetime: TTL BatchModeJobTTL (8 days).
func BatchModeJobDoneKey(group, job string) string {
	return batchModeKey(group) + ":jobdone:" + job
}
