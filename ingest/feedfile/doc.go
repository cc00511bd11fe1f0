// Package feedfile parses the feed files of `feed:` sources: CSV with a
// header, or JSONL, whose rows give an image URL (column url, image_url or
// image) and optionally sku, name and key. It only parses: listing the
// rows as items is package ingest's, fetching the URLs worker/feedfetch's.
package feedfile
