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
//	redis-sentinel://[user:pass@]h1:port,h2:port/master[/db][?sentinel_password=p]
//	                                                        Sentinel-managed master (redis.NewFailoverClient);
//	                                                        user:pass authenticates to the master
//	redis-cluster://[user:pass@]h1:port,h2:port             Redis Cluster (redis.NewClusterClient)
//
// redis:// and redis-sentinel:// URLs also take replica_ack=N and replica_ack_timeout=D (see
// [WithReplicaAck]; on by default for Sentinel). Every client honours its callers' context deadlines.
//
// # Keys
//
// Every key and channel starts with [Options.Prefix]. A table's keys are
// prefix+"{"+table+"}:..." so that, in Redis Cluster, a record, the table's
// id set and its secondary indexes share one hash slot; every Lua script and
// MULTI/EXEC in this package touches keys of a single slot only.
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
// device enrollment and the pub/sub signals on three masters), but with one
// tag per table all records of a kind sit in one slot, hence on one master:
// a Cluster adds failover and room for the other kinds, not a spread of the
// logins. Pub/sub messages (published with the writes, from scripts) reach
// subscribers on any node, but only what one master publishes arrives in
// order: [Store.Publish] goes to any master, a script publishes from its
// record's, and the cluster bus relays each independently. Passport's
// messages are signals to read a record again, so their order does not
// matter; the conformance suite runs on a Cluster without its order checks.
//
// The layout that spreads them, keeping every atomic step in one slot:
//
//   - Tags in IDs. A table may derive a record's tag from its ID
//     ("<tag>_<rest>"; IDs without the separator keep the table's tag, so
//     records of the old layout stay readable until they expire). Logins
//     and sessions get a random tag each; per-user data (the user's indexes
//     of open logins, the push limits) live in the user's tag, a keyed hash
//     of the normalized email. A session's ID must not carry its user's tag:
//     its SessionIndex goes to the applications, and a prefix shared by all
//     of a user's sessions would let them link the sessions of a user they
//     only know by transient NameIDs.
//   - The login steps in two ordered writes instead of one script. A login is
//     parked before its email is known, so it cannot be born in its user's
//     slot; moving it there at the email step (a new ID) would re-issue the
//     browser's cookie, which is scoped to the login's path, and split its
//     event stream and audit trail over two IDs. Instead the user's indexes
//     become sorted sets scored by expiry, pruned by score (a script cannot
//     check a record's existence in another slot, which the sweep of the
//     current indexes does). The email step first reserves in the user's
//     slot (one capped add to the pending, per-network pending and number
//     indexes), then moves the login in its own slot by compare-and-swap and
//     publishes, and gives the reservation back if the swap lost. An answer
//     swaps the login first (so one-time approval stays a single
//     compare-and-swap) and then leaves the indexes. A failure between the
//     two writes leaves a reservation until its score passes: the caps are
//     then stricter and one more number is avoided, never looser, since the
//     reservations always include every open login; ApproveByNumber already
//     checks the login's own state. Cost: two more commands and round
//     trips per login (the reservation and its release are writes of their
//     own), plus one on the email step unless the members of the pending
//     index carry the numbers they hold (the step reads the numbers in use
//     today together with the index, in one script). On a single server
//     this layout only costs; it is worth it where one master cannot carry
//     every login in flight.
//   - Id sets per tag. List of a table whose tag is in its IDs scans the
//     masters for its id sets; logins and sessions are never listed whole
//     and drop theirs. Users, applications, devices and keys keep one tag
//     per table: they are few, listed by administrators, and rarely written.
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
//   - [Store.Purge], which scans and deletes key by key.
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
