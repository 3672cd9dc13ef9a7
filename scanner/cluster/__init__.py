"""Scans on a Dask distributed cluster (``scan --cluster``).

The scan is the single-machine pipeline (scanner.pipeline) run as Dask tasks;
this package adds only what a cluster needs:

- split: the input cut into tasks by the stable hash of each domain
  (scanner.names.key, the key a shard and the resume use), written once
  under the dataset as one file per task. A domain always lands in the same
  task, so deduplication within a task is deduplication of the survey.
- task: one task runs the pipeline over its file and writes its own part
  files, ``part-<task>-<n>.parquet``, each atomically. A task run again
  (its worker died) first reads the parts its earlier attempts wrote and
  goes on from there, so no domain is written twice and none is lost.
- route: every MX address has one owner among the workers (rendezvous
  hashing of the address over the workers' addresses); all handshakes with
  it, from every task, go to that worker's Handshaker (scanner.handshake),
  which alone connects to it. One connection at a time per address and the
  minimum interval between connections therefore hold for the cluster, not
  per process. The requests of MTA-STS policy fetches (HTTPS, one address
  at a time) go the same way, to the owner's Fetcher (scanner.mtasts.fetch).
- service: the worker plugin that owns the Handshaker and the Fetcher and
  answers the route's requests over Dask's own (TLS) connections.
- driver: the client side: connect (TLS with the survey's certificates, or
  a local cluster with throwaway ones), split, submit the tasks a few at a
  time, aggregate their progress into the same display as a local scan, and
  end with one manifest.
- certs: the survey's CA and member certificates (``scan cluster-certs``).

Why a route per handshake and not a DNS phase, a shuffle of the TLS targets
by address and a join per domain: most domains need no handshake, and those
that do mostly share a provider's addresses, whose sessions each owner
handshakes once and caches; a route costs one small request per (address,
SNI) a task has not seen, and keeps the pipeline's streaming shape (memory
bounded by the windows, rows written as domains finish). A shuffle would
hold every domain's resolution until all of DNS is done: memory and disk
proportional to the input, and no row written before the last lookup.
benchmarks/RESULTS.md has the route's measured cost.
"""
