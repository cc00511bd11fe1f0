package watch

import (
	"context"
	"fmt"
	"net/url"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	sqstypes "github.com/aws/aws-sdk-go-v2/service/sqs/types"
)

// SQS reads S3 event notifications from an Amazon SQS queue (S3 → SQS, or
// S3 → SNS → SQS). A message is deleted once handled; one that is not
// (the watcher died) becomes visible again after the queue's visibility
// timeout and is handled then.
type SQS struct {
	Client   *sqs.Client
	QueueURL string
	// WaitSeconds is the long-poll wait of one receive. Zero means 20 (the
	// most SQS allows).
	WaitSeconds int32

	buf []sqstypes.Message
}

// SQSOptions configure NewSQS.
type SQSOptions struct {
	// Endpoint overrides the SQS endpoint (a local SQS-compatible server).
	// Empty: AWS, from the queue URL's region.
	Endpoint string
	// Region overrides the region read from the queue URL.
	Region string
}

// NewSQS returns an event source on the queue at queueURL
// (https://sqs.REGION.amazonaws.com/ACCOUNT/QUEUE), with credentials from
// the AWS default chain (environment, shared files, instance role).
func NewSQS(ctx context.Context, queueURL string, o SQSOptions) (*SQS, error) {
	u, err := url.Parse(queueURL)
	if err != nil || u.Host == "" || (u.Scheme != "https" && u.Scheme != "http") {
		return nil, fmt.Errorf("watch: SQS queue URL %q: want https://sqs.REGION.amazonaws.com/ACCOUNT/QUEUE", queueURL)
	}
	region := o.Region
	if region == "" {
		// sqs.eu-west-1.amazonaws.com
		if p := strings.Split(u.Hostname(), "."); len(p) >= 3 && p[0] == "sqs" {
			region = p[1]
		}
	}
	var opts []func(*config.LoadOptions) error
	if region != "" {
		opts = append(opts, config.WithRegion(region))
	}
	cfg, err := config.LoadDefaultConfig(ctx, opts...)
	if err != nil {
		return nil, fmt.Errorf("watch: AWS configuration: %w", err)
	}
	client := sqs.NewFromConfig(cfg, func(so *sqs.Options) {
		if o.Endpoint != "" {
			so.BaseEndpoint = aws.String(o.Endpoint)
		}
	})
	return &SQS{Client: client, QueueURL: queueURL}, nil
}

// Next implements EventSource.
func (s *SQS) Next(ctx context.Context) ([]byte, func(context.Context) error, error) {
	for len(s.buf) == 0 {
		wait := s.WaitSeconds
		if wait == 0 {
			wait = 20
		}
		out, err := s.Client.ReceiveMessage(ctx, &sqs.ReceiveMessageInput{
			QueueUrl: aws.String(s.QueueURL), MaxNumberOfMessages: 10, WaitTimeSeconds: wait,
		})
		if err != nil {
			return nil, nil, fmt.Errorf("receive from %s: %w", s.QueueURL, err)
		}
		s.buf = out.Messages
	}
	m := s.buf[0]
	s.buf = s.buf[1:]
	handle := aws.ToString(m.ReceiptHandle)
	ack := func(ctx context.Context) error {
		_, err := s.Client.DeleteMessage(ctx, &sqs.DeleteMessageInput{QueueUrl: aws.String(s.QueueURL), ReceiptHandle: aws.String(handle)})
		if err != nil {
			return fmt.Errorf("delete message from %s: %w", s.QueueURL, err)
		}
		return nil
	}
	return []byte(aws.ToString(m.Body)), ack, nil
}
