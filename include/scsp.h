/*
 * scsp.h — C interface of libscsp, the shared-memory TLS session cache.
 *
 * Every worker process on a host opens the same segment file (normally on
 * /dev/shm) and sees one lock-free hash table of TLS sessions. get/put/take
 * are plain memory operations: no syscall, no lock, no daemon.
 *
 * Link:   cc app.c $(pkg-config --cflags --libs scsp)
 * Static: cc app.c $(pkg-config --cflags --static --libs scsp)   (libscsp.a)
 * For OpenSSL servers, see scsp_openssl.h (header-only helper).
 *
 * ---------------------------------------------------------------------------
 * RETURN CODES AND ERRORS
 *   Every int-returning function returns SCSP_OK (0) or a negative SCSP_E_*
 *   code; scsp_strerror() names it. A NULL pointer, a key of 0 or more than
 *   SCSP_MAX_KEY bytes, a NULL buffer with a non-zero length, or a bad option
 *   is SCSP_E_INVAL — never a crash (a pointer that is non-NULL but invalid
 *   cannot be detected and is undefined behaviour, as in libc).
 *   - SCSP_E_IO: a system call failed and errno holds the OS error (only
 *     scsp_open, scsp_prefault and scsp_guard_truncation return it:
 *     get/put/take/remove work on shared memory).
 *     For any other code errno is unspecified.
 *   - scsp_last_error(): after a call fails with any code other than
 *     SCSP_E_NOT_FOUND or SCSP_E_BUFFER, a message for people saying what is
 *     wrong and what to do, e.g. "scsp_open: /dev/shm/x is owned by uid 0 ...".
 *     Per thread; valid until the next failing scsp call in that thread.
 *   - No Rust panic ever crosses this interface: a bug inside libscsp is
 *     reported as SCSP_E_INTERNAL.
 *
 * OWNERSHIP
 *   scsp_open() allocates a handle; scsp_close() frees it exactly once. The
 *   library never keeps or frees a pointer you pass in: keys, values and
 *   buffers are only read or written during the call. Strings returned by
 *   scsp_strerror() and scsp_version() are static; never free them.
 *
 * THREADS
 *   A handle may be used by any number of threads at once without locking
 *   (the table is lock-free). Only scsp_close() must not race with other
 *   calls on the same handle. Several handles on one segment are fine too.
 *
 * FORK
 *   A handle survives fork(): the segment is a shared mapping, so parent and
 *   child keep seeing the same table through their copies of the handle, and
 *   the child's statistics move to a counter slot of its own on its first
 *   call. Either process may keep using its copy; each closes (or exits)
 *   independently. Opening once in a master and forking workers is the
 *   intended prefork pattern.
 *
 * SECRETS
 *   Values are TLS session state and ticket keys: secrets. The segment is
 *   created owner-only (mode 0600; 0660 to share with a group, never any
 *   permission for others) and excluded from core dumps; libscsp never logs
 *   keys or values, and leaves a value in your buffer only when it returns
 *   it. Wipe copies you make (see scsp_ticket_key).
 * ---------------------------------------------------------------------------
 */
#ifndef SCSP_H
#define SCSP_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Version of this interface. Checked at run time with scsp_abi_version(). */
#define SCSP_ABI_VERSION 1

/* Longest key accepted, in bytes. */
#define SCSP_MAX_KEY 255

/* Longest time a value is kept, in seconds: 7 days, the longest lifetime
 * TLS 1.3 allows a ticket (RFC 8446, section 4.6.1). scsp_put clamps a
 * longer ttl_secs to it (scsp::MAX_TTL_SECS in Rust). */
#define SCSP_MAX_TTL_SECS 604800u

/* Return codes. Numbers are stable; new failures get new numbers. */
#define SCSP_OK 0
#define SCSP_E_NOT_FOUND (-1) /* no live value for the key */
#define SCSP_E_BUFFER (-2)    /* buffer too small; *val_len = bytes needed */
#define SCSP_E_TOO_LARGE (-3) /* value larger than the segment's max_value */
#define SCSP_E_INVAL (-4)     /* NULL pointer, bad length, bad option */
#define SCSP_E_CORRUPT (-5)   /* not a segment, or damaged/unfinished header */
#define SCSP_E_VERSION (-6)   /* incompatible segment format or layout */
#define SCSP_E_EXISTS (-7)    /* SCSP_OPEN_EXCL and a file exists */
#define SCSP_E_PERM (-8)      /* symlink, untrusted owner or group, open to others, ACL */
#define SCSP_E_IO (-9)        /* system call failed; see errno */
#define SCSP_E_INTERNAL (-10) /* bug in libscsp, caught; please report */
#define SCSP_E_OPENSSL (-11)  /* scsp_openssl.h only: an OpenSSL call failed */

/* An open cache. Opaque; made by scsp_open, freed by scsp_close. */
typedef struct scsp_cache scsp_cache;

/* scsp_options.flags */
#define SCSP_OPEN_NO_CREATE 0x1u           /* attach only; missing file: SCSP_E_IO, errno ENOENT */
#define SCSP_OPEN_EXCL 0x2u                /* create only; existing file: SCSP_E_EXISTS */
#define SCSP_OPEN_ALLOW_FOREIGN_OWNER 0x4u /* accept a segment of another uid: root or .owner,
                                              in group .group (needs SCSP_OPEN_SET_GROUP) */
#define SCSP_OPEN_SET_GROUP 0x8u           /* the segment's group is .group: a new segment
                                              gets it, another user's must have it */
#define SCSP_OPEN_LAYOUT_SETS 0x10u        /* a new segment keeps every session in place
                                              (docs/operations.md, "Choosing a layout"):
                                              .max_value is then the largest session, 64 to
                                              8112 (0: 432, 512-byte slots) */

/*
 * How scsp_open creates or attaches. Zero in any field means its default, so
 * start from SCSP_OPTIONS_INIT (which sets struct_size) and set what you need:
 *     scsp_options o = SCSP_OPTIONS_INIT;  o.size_bytes = 16u << 20;
 * The geometry fields (size_bytes, max_value, typical_value, shards, host_id,
 * mode, group)
 * apply only when a new segment is created; attaching to an existing one
 * uses the geometry it was created with (scsp_stats reports it). The ticket
 * fields set this handle's key rotation schedule; give every process of a
 * pool the same values.
 * struct_size lets the struct grow: unknown trailing bytes must be zero.
 * A caller built against an older scsp.h (struct_size 48, before .owner)
 * keeps working: the fields it does not have are taken as 0.
 *
 * SHARING WITH WORKERS OF ANOTHER USER (docs/operations.md, "Permissions"):
 * the segment is created with mode 0660 and SCSP_OPEN_SET_GROUP (group =
 * the workers' group); the workers open it with
 * SCSP_OPEN_ALLOW_FOREIGN_OWNER | SCSP_OPEN_SET_GROUP and the same group,
 * and .owner = the uid that creates it unless that is root. A segment of
 * another user whose owner is neither root nor .owner, or whose group is
 * not .group, is refused (SCSP_E_PERM), as is any segment that gives
 * "other" users a permission or carries a POSIX ACL granting more than its
 * mode shows.
 */
typedef struct scsp_options {
    uint32_t struct_size; /* sizeof(scsp_options); required */
    uint32_t flags;       /* SCSP_OPEN_* bits; 0: attach if it exists, else create */
    uint64_t size_bytes;  /* session log bytes of a new segment; 0: 64 MiB */
    uint32_t max_value;   /* largest value, power of two 256..65536; 0: 8192
                             (SCSP_OPEN_LAYOUT_SETS: see there) */
    uint32_t shards;      /* log shards, power of two; 0: 16 (leave 0 with
                             SCSP_OPEN_LAYOUT_SETS: it has none; else SCSP_E_INVAL) */
    uint32_t mode;        /* file permission bits: 0600, or 0660 to share with a group
                             (.group with SCSP_OPEN_SET_GROUP, else the creator's);
                             "other" and execute bits are refused; 0: 0600 */
    uint32_t host_id;     /* origin id stamped on entries (bridge); 0: 1 */
    uint32_t group;       /* gid for SCSP_OPEN_SET_GROUP (use mode 0660) */
    uint32_t typical_value; /* most values' size, sizes a new segment's index
                               (docs/operations.md); 64..max_value; 0: 176
                               (leave 0 with SCSP_OPEN_LAYOUT_SETS) */
    uint32_t ticket_period_secs;   /* ticket key rotation period; 0: 6 h */
    uint32_t ticket_lifetime_secs; /* ticket validity, <= 2 * period and <= 7 days; 0: 12 h
                                      (or 2 * period if that is shorter) */
    uint32_t owner;       /* with SCSP_OPEN_ALLOW_FOREIGN_OWNER: the uid, besides root
                             (always trusted), that may own the segment; 0: root only */
    uint32_t reserved;    /* must be 0 */
} scsp_options;

#define SCSP_OPTIONS_INIT { (uint32_t)sizeof(scsp_options), 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0 }

/*
 * Counters summed over every process that uses the segment, and its
 * geometry. A snapshot, not a transaction; it makes one kill(pid, 0) per
 * attached process (to leave out dead ones), so call it from a timer, not
 * per connection. Set struct_size first:
 *     struct scsp_stats s = SCSP_STATS_INIT;  scsp_stats(c, &s);
 * (A struct tag, like struct stat and stat(): the function has the name.)
 */
struct scsp_stats {
    uint32_t struct_size;    /* sizeof(scsp_stats); required */
    uint32_t reserved;
    uint64_t hits;           /* get/take found a value */
    uint64_t misses;         /* get/take found nothing usable */
    uint64_t puts;           /* values stored */
    uint64_t takes;          /* values handed out by take */
    uint64_t removes;        /* remove calls */
    uint64_t too_large;      /* puts refused (too large or bad key) */
    uint64_t evictions;      /* live entries pushed out of a full bucket (sets: set) */
    uint64_t expired;        /* lookups that found an expired entry */
    uint64_t bytes_written;  /* bytes appended to the logs (sets: written to slots) */
    uint64_t lost;           /* puts that could not publish (contention, or lapped) */
    uint64_t corrupt;        /* damaged entries found by lookups (each unlinked) */
    uint64_t processes;      /* open handles of live processes (one per scsp_open), at
                                most 1023: the segment has 1024 counter slots, and
                                handles beyond 1023 share slot 0, which is not counted
                                here (their hits and puts still are) */
    uint64_t capacity_bytes; /* session log bytes, all shards (sets: slot bytes) */
    uint64_t shards;         /* 1 for a segment of the sets layout */
    uint64_t index_slots;    /* sets layout: slots (ways), one session each */
    uint64_t max_value;      /* largest value accepted */
    uint64_t host_id;
    uint64_t created;        /* creation time, unix seconds */
    uint64_t appended_bytes; /* bytes ever appended (sum of shard tails; sets: = bytes_written) */
    double log_fill;         /* fraction of the log holding data, 0..1 (sets: of the ways) */
};

#define SCSP_STATS_INIT { (uint32_t)sizeof(struct scsp_stats), 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0.0 }

/*
 * Open the segment at path, creating it if absent (unless opts->flags says
 * otherwise). opts NULL means all defaults: attach if the file exists, else
 * create a 64 MiB owner-only segment. Creation races are safe: exactly one
 * process creates, the others attach. Refuses (SCSP_E_PERM) symlinks, files
 * owned by other users (unless SCSP_OPEN_ALLOW_FOREIGN_OWNER, and then only
 * root's or .owner's, in group .group), files giving "other" users any
 * permission (read included), and files whose POSIX ACL grants more than
 * their mode shows; scsp_last_error() says what to do (chmod o-rwx,
 * setfacl -b, ...).
 * On success *out is the handle; on failure *out is NULL.
 * Returns SCSP_OK, SCSP_E_INVAL (NULL path/out, empty path, bad options:
 * scsp_last_error() names the opts-> field to fix), SCSP_E_IO (errno set),
 * SCSP_E_EXISTS, SCSP_E_PERM, SCSP_E_CORRUPT, SCSP_E_VERSION.
 */
int scsp_open(const char *path, const scsp_options *opts, scsp_cache **out);

/* Free a handle (the segment file stays). NULL is a no-op. Safe also after
 * the file was truncated under it, guarded or not: it then writes nothing to
 * the segment. */
void scsp_close(scsp_cache *c);

/*
 * Store val (val_len bytes; val may be NULL when val_len is 0) under key for
 * ttl_secs seconds, visible at once to every process using the segment.
 * Replaces any previous value of the key. A ttl_secs over SCSP_MAX_TTL_SECS
 * (7 days) is clamped to it: the value is kept 7 days.
 * Returns SCSP_OK, SCSP_E_TOO_LARGE (val_len > max_value; on a segment of the
 * sets layout also a key over 32 bytes whose value then overflows its slot,
 * docs/operations.md "Choosing a layout"), SCSP_E_INVAL
 * (NULL c or key, key_len 0 or > SCSP_MAX_KEY, NULL val with val_len > 0,
 * ttl_secs 0).
 */
int scsp_put(scsp_cache *c, const uint8_t *key, size_t key_len,
             const uint8_t *val, size_t val_len, uint32_t ttl_secs);

/*
 * Copy the value of key into buf (buf_cap bytes) and set *val_len to its
 * length. buf may be NULL when buf_cap is 0, to ask for the size. buf must not
 * overlap key. Allocates nothing and makes no system call.
 * Returns SCSP_OK; SCSP_E_NOT_FOUND (*val_len = 0); SCSP_E_BUFFER (nothing
 * copied, *val_len = bytes needed — a hint, the entry may change before you
 * retry); SCSP_E_INVAL (NULL c, key or val_len, bad key_len, NULL buf with
 * buf_cap > 0, buf overlapping key).
 * Only SCSP_OK writes a value into buf (its first *val_len bytes): after
 * SCSP_E_NOT_FOUND (no entry, expired, stale, damaged, a lost race) or
 * SCSP_E_BUFFER, buf holds no byte of any value (bytes a failed check had
 * copied are zeroed; the rest of buf is untouched).
 */
int scsp_get(scsp_cache *c, const uint8_t *key, size_t key_len,
             uint8_t *buf, size_t buf_cap, size_t *val_len);

/*
 * As scsp_get, and remove the entry: of any number of threads or processes
 * taking the same entry at once, exactly one gets SCSP_OK, and only its buf
 * holds the value: a take that loses the race leaves none of it in buf,
 * whatever it returns. On SCSP_E_BUFFER nothing is copied and nothing taken.
 * Use for single-use values (TLS 1.3 stateful tickets, anti-replay).
 */
int scsp_take(scsp_cache *c, const uint8_t *key, size_t key_len,
              uint8_t *buf, size_t buf_cap, size_t *val_len);

/*
 * Remove key for every process (and, through the bridge, every host).
 * Returns SCSP_OK if a live entry was removed, SCSP_E_NOT_FOUND if there was
 * none (the removal is still recorded for the bridge, on a segment a bridge
 * has run on), SCSP_E_INVAL.
 */
int scsp_remove(scsp_cache *c, const uint8_t *key, size_t key_len);

/*
 * Fill *out (whose struct_size you set, e.g. with SCSP_STATS_INIT).
 * Returns SCSP_OK, SCSP_E_INVAL (NULL, or struct_size too small).
 */
int scsp_stats(scsp_cache *c, struct scsp_stats *out);

/*
 * Whether the segment's path no longer names the file this handle maps: it
 * was removed, or replaced by a new segment (an upgrade). The handle keeps
 * working on the old file, which no new process will open; reopen to follow.
 * Also 1 once the file no longer holds the segment: cut or grown to another
 * length, or its header gone (cut and grown back), and once a handle
 * scsp_guard_truncation guards met a cut file. Makes system calls (stat,
 * madvise): call it on reload or from a timer, not per handshake.
 * Returns 1 (replaced), 0 (not), SCSP_E_INVAL (NULL c).
 */
int scsp_replaced(scsp_cache *c);

/*
 * Survive the segment file being truncated (`truncate -s 0`, `: > PATH`)
 * while this process maps it. Without this, the next get or put after a
 * truncation kills the process with SIGBUS (a mapped page past the end of
 * its file). With it, a process-wide SIGBUS handler maps private zero pages
 * over this handle's mapping instead: from then on gets miss, puts go
 * nowhere others see, and scsp_replaced() returns 1 (remove the file,
 * create a new segment, reopen). A SIGBUS anywhere else is handed to the
 * action installed before (a handler of yours that recovers keeps the
 * guard; one that hands the fault back ends, after a few rounds, in the
 * default action). Call it in each process after the server has set up its
 * own signal handlers (in a worker at its start: Apache httpd replaces the
 * SIGBUS action in its parent); calling it again re-installs the handler if
 * another took its place. Makes system calls: never per handshake.
 * Returns SCSP_OK, SCSP_E_INVAL (NULL c, or more than 32 segments guarded in
 * one process), SCSP_E_IO (sigaction failed, errno set).
 */
int scsp_guard_truncation(scsp_cache *c);

/*
 * Map every page of the segment into this process now, so that no get or put
 * takes a page fault later (a kernel entry of a few microseconds per 4 KiB
 * page, 260 000 per GiB, at moments no one chose). Takes about 0.3 s per GiB
 * of 4 KiB pages. It holds for the calling process only: a child forked
 * afterwards starts with none of the pages mapped, so a server that opens in
 * its master calls it in each worker (the nginx and Apache modules do, at
 * worker start). Makes a system call: never per handshake.
 * Returns SCSP_OK, SCSP_E_INVAL (NULL c), SCSP_E_IO (errno set; EINVAL:
 * Linux older than 5.14, where nothing changes and pages keep faulting in as
 * they are touched).
 */
int scsp_prefault(scsp_cache *c);

/*
 * SHARED TICKET KEYS (stateless resumption, RFC 5077 / TLS 1.3 tickets)
 *
 * Every process (and, through the bridge, every host) using the segment sees
 * one key ring: a current key that encrypts new tickets, and recent keys that
 * still decrypt older tickets. The ring rotates itself on a schedule; a
 * ticket made by any worker can be decrypted by any other.
 *
 * A key is AES-256-CBC + HMAC-SHA256 material (the scheme of OpenSSL's
 * SSL_CTX_set_tlsext_ticket_key_evp_cb); scsp_openssl.h wires it up.
 * THESE ARE SECRETS: anyone holding them can decrypt every session made with
 * them. Wipe every scsp_ticket_key you fill as soon as you are done with it
 * (OPENSSL_cleanse, explicit_bzero), never log it, never write it to disk.
 */
typedef struct scsp_ticket_key {
    uint8_t name[16];     /* public key name, sent in the clear in each ticket */
    uint8_t aes_key[32];  /* AES-256-CBC key: secret */
    uint8_t hmac_key[32]; /* HMAC-SHA256 key: secret */
    uint64_t created;     /* unix seconds */
    uint32_t origin;      /* host id that created the key */
    uint32_t flags;       /* SCSP_TICKET_KEY_CURRENT if new tickets use this key */
} scsp_ticket_key;

#define SCSP_TICKET_KEY_CURRENT 0x1u

/*
 * Fill *out with the key new tickets must be encrypted with (flags has
 * SCSP_TICKET_KEY_CURRENT). Makes the key (and the next one) when due and
 * wipes retired keys; no process has to be in charge of rotation.
 * Returns SCSP_OK; SCSP_E_NOT_FOUND if no key can be made right now (ring
 * full, or another process is stuck making it): issue no ticket;
 * SCSP_E_INVAL (NULL c or out, or a rotation policy other than the
 * segment's: see scsp_ticket_lifetime).
 */
int scsp_ticket_key_current(scsp_cache *c, scsp_ticket_key *out);

/*
 * Fill *out with the key named name (16 bytes, from a ticket), to decrypt a
 * ticket. flags has SCSP_TICKET_KEY_CURRENT unless the key is an older one:
 * then accept the ticket but issue a new one (OpenSSL: return 2, "renew").
 * Returns SCSP_OK, SCSP_E_NOT_FOUND (unknown or retired key: do a full
 * handshake), SCSP_E_INVAL (NULL c, name or out, or a rotation policy other
 * than the segment's: see scsp_ticket_lifetime).
 */
int scsp_ticket_key_find(scsp_cache *c, const uint8_t name[16], scsp_ticket_key *out);

/*
 * Set *secs to how long a ticket stays accepted under this handle's key
 * rotation (ticket_lifetime_secs of scsp_open, or its default): announce at
 * most this as the ticket lifetime, since older tickets no longer decrypt.
 * Call it when setting up tickets, before serving (scsp_openssl.h does): it
 * attaches the segment's key ring and stores the rotation policy there,
 * where the bridge takes it from. Every process of a segment must use the
 * same policy; a handle whose policy differs from the one stored gets
 * SCSP_E_INVAL and scsp_last_error() names both.
 * Returns SCSP_OK, SCSP_E_INVAL (NULL c or secs, or another policy).
 */
int scsp_ticket_lifetime(scsp_cache *c, uint32_t *secs);

/* A static message for a return code; never NULL, never free it. */
const char *scsp_strerror(int code);

/*
 * What went wrong in this thread's last failed call (see ERRORS above);
 * "" if nothing failed yet. Never NULL; do not free.
 */
const char *scsp_last_error(void);

/* Library version, e.g. "0.1.0". Static; never free it. */
const char *scsp_version(void);

/* ABI version of the loaded library; compare with SCSP_ABI_VERSION. */
uint32_t scsp_abi_version(void);

#ifdef __cplusplus
}
#endif

#endif /* SCSP_H */
