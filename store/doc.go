// Package store persists Passport's records in Redis. It knows Redis, not SAML
// and not Passport's domain: callers store JSON values of their own types in a
// [Table], plus small one-time values, rate-limit counters and pub/sub signals.
//
// There is one implementation. With an empty [Options.URL] it runs the very
// same code against an embedded, in-process Redis-protocol server
// (github.com/alicebob/miniredis/v2, keys expiring on the wall clock, served
// over in-memory pipes: no port is opened). Its data is lost when the process
// exits. Its clock advances in 50ms steps, so keys expire up to 50ms late
// there (this keeps every command O(1) in the number of keys).
//
// # URL forms
//
//	""                                                      embedded in-memory store
//	redis://[user:pass@]host:port[/db][?opt=v]              one server (redis.ParseURL)
//	rediss://[user:pass@]host:port[/db][?opt=v]             one server over TLS
//	unix://[user:pass@]/path/to/redis.sock[?db=N&opt=v]     one server on this host, by its Unix socket
//	redis-sentinel://[user:pass@]h1:port,h2:port/master[/db][?sentinel_password=p]
//	                                                        Sentinel-managed master (redis.NewFailoverClient);
//	                                                        user:pass authenticates to the master
//	redis-cluster://[user:pass@]h1:port,h2:port             Redis Cluster (redis.NewClusterClient)
//
// redis://, unix:// and redis-sentinel:// URLs also take replica_ack=N and replica_ack_timeout=D (see
// [WithReplicaAck]; on by default for Sentinel). Every client honours its callers' context deadlines.
//
// # Keys
//
// Every key and channel starts with [Options.Prefix]. A table's keys are
// prefix+"{"+table+"}:..." so that, in Redis Cluster, a record, the table's
// id set and its secondary indexes share one hash slot; every Lua script and
// MULTI/EXEC in this package touches keys of a single slot only, but for a
// change's required records ([Effects.Require]), which only a table whose
// changes run on one server accepts.
//
// # Records
//
// A record is stored as its JSON; one whose JSON is longer than 2 KiB is
// stored deflated, behind a zero byte (no JSON text starts with one). Reads
// accept both forms. An answered login, which keeps its signed Response,
// takes about 3.7 KB of Redis this way instead of 12 KB.
//
// # Redis Cluster
//
// Everything works on a Cluster (the test suite runs whole logins, sessions,
// device enrollment and the pub/sub signals on three masters). Tables made
// with [NewTable] keep one hash tag each, so all their records sit on one
// master: users, applications, devices and keys, which are few, listed by
// administrators and rarely written. Tables made with [NewSpreadTable]
// (logins and sessions, written by every login) give each record a slot of
// its own and each group of indexes (a user's) the slot of its group, so on
// a Cluster they spread over the masters; see [NewSpreadTable] for the
// layout, the order of the writes that replace its single scripts, and what
// a failure between them can leave (an index entry too many, counted until
// its score passes: limits stricter, never looser). Why not move a login
// into its user's slot at the email step instead: it is parked before the
// email is known, and a move means a new ID, which would re-issue the
// browser's cookie (scoped to the login's path) and split its event stream
// and audit trail over two IDs; and a session cannot carry its user's tag,
// since its ID reaches the applications (SessionIndex) and a shared prefix
// would link a user's sessions across them. On one server a spread
// table is a plain one, unless [Options.Spread] asks for the Cluster layout
// (the test suite runs that way once more in CI). On a Cluster a login costs
// eight more round trips and seven more commands than on one server (17 and
// 24 instead of 9 and 17 in api's TestLoginRoundTrips): among them, a login's
// admission and its create are apart, and so are the push counts and the
// move that sends the push ([Table.CreateAdmitted] and [Effects.Hits] are one
// script on one server only).
//
// Pub/sub messages (published with the writes, from scripts) reach
// subscribers on any node, but only what one master publishes arrives in
// order: [Store.Publish] goes to any master, a script publishes from its
// record's, and the cluster bus relays each independently. Passport's
// messages are signals to read a record again, so their order does not
// matter; the conformance suite runs on a Cluster without its order checks.
//
// Moving an existing Cluster deployment to this layout: the keys of logins
// and sessions changed, so logins in flight and IdP sessions opened before
// the upgrade are not found after it (employees approve once more); nothing
// else moves. Deployments on one server or Sentinel keep their keys.
//
// # Round trips
//
// Every operation is one round trip to the server, except:
//
//   - [Table.Update] and [Table.UpdateAndPublish]: two (a read, then a
//     compare-and-swap script, which for UpdateAndPublish also publishes),
//     plus one per lost race; [Table.Change] from the record the caller
//     read: one, plus one per lost race (its index changes and messages ride
//     in the same script);
//   - [Table.List] and [Table.ListIndex] of a set of more than 512 ids: one,
//     plus one per 256 ids, plus one per such batch holding stale ids;
//   - [Store.Subscribe]: one (an awaited SUBSCRIBE) for the first subscriber
//     of a channel in this Store, none for the others; all subscriptions of
//     a Store share one pub/sub connection, opened by the first Subscribe;
//   - [Store.Purge], which scans and deletes key by key;
//   - a spread table in the Cluster layout ([NewSpreadTable]): [Table.Create]
//     ([Table.CreateWith]) and [Table.Change] one more per group of indexes
//     added to, and one more when indexes are left; [Table.ListIndex] two
//     (the ids, then the records), as its [Batch] reads.
//
// [Table.CreateAdmitted] counts a hit, makes a one-time claim and creates a
// record in one round trip where the three would take two; [Effects.Hits]
// count hits in a change's own round trip.
//
// A [Batch] sends any number of reads and counter hits in one round trip.
// [Store.Stats] counts the round trips a Store has made.
//
// Scripts are sent by digest (EVALSHA); the first call of a script on a
// server takes one more round trip to load it. The embedded server runs each
// Lua script in a fresh interpreter (about 0.1ms), so there scripted
// operations cost more than plain commands; on a real server a script costs
// a few microseconds of server time.
//
// The server must be Redis 6.2 or later (GETDEL, SET KEEPTTL).
//
// # Errors
//
// Missing records yield [ErrNotFound], duplicate creates [ErrAlreadyExists];
// test with errors.Is. Other errors are wrapped with a "store: ..." prefix;
// [Unavailable] tells those that mean "not now" (a server out of reach, a
// deadline passed, a failover) from the others.
package store
