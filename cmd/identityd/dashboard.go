package main

import (
	"errors"
	"strings"

	"github.com/hibiken/asynq"
	"github.com/hibiken/asynqmon"

	"github.com/identityd/identityd/worker"
)

// newDashboard returns asynqmon rooted at pathDashboard. It is read-only unless writable (an admin password is
// set). Payloads and results are shown through worker.FormatPayload: whitelisted ids only.
//
// asynqmon builds its own Redis clients from connOpt and closes them in Close, so it never holds — and can
// never close — the client the store and the queue share.
func newDashboard(connOpt asynq.RedisConnOpt, writable bool) *asynqmon.HTTPHandler {
	return asynqmon.New(asynqmon.Options{
		RootPath:     strings.TrimSuffix(pathDashboard, "/"),
		RedisConnOpt: connOpt,
		ReadOnly:     !writable,
		PayloadFormatter: asynqmon.PayloadFormatterFunc(func(_ string, payload []byte) string {
			return worker.FormatPayload(payload)
		}),
		ResultFormatter: asynqmon.ResultFormatterFunc(func(_ string, result []byte) string {
			return worker.FormatPayload(result)
		}),
	})
}

// dashboardPoolSize caps the dashboard's own connections: it serves a handful of operators, not traffic.
const dashboardPoolSize = 4

// asynqConnOpt describes the process's Redis for components that open their own connections (the
// dashboard): the same server, database and credentials as the shared client.
func (m *Main) asynqConnOpt() (asynq.RedisConnOpt, error) {
	cfg := m.cfg
	switch {
	case len(cfg.RedisCluster) > 0:
		opt, err := cfg.clusterOptions()
		if err != nil {
			return nil, err
		}
		t := m.redisTimeouts
		return asynq.RedisClusterClientOpt{Addrs: opt.Addrs, Password: opt.Password, TLSConfig: opt.TLSConfig,
			ReadTimeout: t.Read, WriteTimeout: t.Write}, nil
	case cfg.RedisURL != "":
		opt, err := parseRedisURL(cfg.RedisURL)
		if err != nil {
			return nil, err
		}
		m.redisTimeouts.apply(opt)
		return asynq.RedisClientOpt{Network: opt.Network, Addr: opt.Addr, Username: opt.Username,
			Password: opt.Password, DB: opt.DB, TLSConfig: opt.TLSConfig, PoolSize: dashboardPoolSize,
			DialTimeout: opt.DialTimeout, ReadTimeout: opt.ReadTimeout, WriteTimeout: opt.WriteTimeout}, nil
	case m.mini != nil:
		t := m.redisTimeouts
		return asynq.RedisClientOpt{Addr: m.mini.Addr(), PoolSize: dashboardPoolSize, DialTimeout: t.Dial,
			ReadTimeout: t.Read, WriteTimeout: t.Write}, nil
	}
	return nil, errors.New("no redis connection")
}
