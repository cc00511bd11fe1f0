package jobs

import (
	"context"
	"fmt"
	"time"

	"github.com/redis/go-redis/v9"
)

// modelCallScript counts one model call in its minute of Redis's clock
// (BatchSeriesKey: model_calls, model_ms, model_errors for a failed send).
// A batch whose record has no meta (gone, or never created) gets nothing:
// no key without a TTL is created for it. The series key takes the batch
// key's TTL when that has one (a call that ends after finalize).
var modelCallScript = redis.NewScript(`
if redis.call('HEXISTS', KEYS[1], 'meta') == 0 then return 0 end
local m = math.floor(tonumber(redis.call('TIME')[1]) / 60) .. ':'
redis.call('HINCRBY', KEYS[2], m .. 'model_calls', 1)
redis.call('HINCRBY', KEYS[2], m .. 'model_ms', ARGV[1])
if ARGV[2] == '1' then redis.call('HINCRBY', KEYS[2], m .. 'model_errors', 1) end
local ttl = redis.call('PTTL', KEYS[1])
if ttl > 0 then redis.call('PEXPIRE', KEYS[2], ttl) end
return 1
`)

// CountModelCall adds one model call that took d (sent and answered, or
// failed at the provider: failed) to a batch's per-minute series, in one
// round trip. A batch without a record counts nothing and is no error.
func (t *Tracker) CountModelCall(ctx context.Context, batch string, d time.Duration, failed bool) error {
	f := "0"
	if failed {
		f = "1"
	}
	keys := []string{BatchKey(t.prefix, batch), BatchSeriesKey(t.prefix, batch)}
	if err := modelCallScript.Run(ctx, t.rdb, keys, d.Milliseconds(), f).Err(); err != nil {
		return fmt.Errorf("count a model call of batch %s: %w", batch, err)
	}
	return nil
}
