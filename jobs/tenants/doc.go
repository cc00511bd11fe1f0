// Package tenants owns the tenants file (shares of the model rate limits and
// daily and monthly budgets in money or tokens, each tenant's source and
// output locations for the API (Config.Locations: deny by default) and the
// file holding its webhook key (Config.WebhookSecret), hot-reloaded), the spend
// ledger in Redis (per tenant, per day and per month), and the budget
// checks: refusing a batch whose estimate is over what is left, and saying
// when a tenant has nothing left (its running items pause).
//
// It knows batches only to learn a batch's tenant (BatchReader, a
// jobs.Tracker), and its Redis keys are jobs' (jobs.TenantSpendKey). It knows
// nothing of models, providers, storage, asynq or the worker: callers give it
// token counts and costs, and it answers with typed errors (*BudgetError).
package tenants
