/*
 * A model of mmapper's chunk protocol, as src/ implements it, for spin.
 * model/README.md maps every step below to the function of src/ it stands
 * for and says what is left out.
 *
 * Two slabs (keys 0 and 1) of two chunks each (chunks 0 1 | 2 3), threads
 * that call the public operations, the reclaimer thread, and the kernel's
 * view of each chunk.  One file, several configurations (-DCFG=n, below):
 * each is searched exhaustively and checks the properties it can reach.
 *
 * Properties (asserts, evaluated in the step they name; plus spin's invalid
 * end states and, in CFG 4, an LTL formula under weak fairness):
 *  P1 one fresh-map system call per chunk per Unmapped->Mapped epoch:
 *     every fresh mmap (NOREPLACE) and every reservation finds the chunk
 *     absent from the kernel, however many threads race;
 *  P2 a lookup (is_mapped, the fast path, the lock-free scan) that answers
 *     Mapped does so while the kernel has the chunk read-write; and when a
 *     revoking system call starts, the record no lookup can read as Mapped
 *     (CHUNK_LEAVING or another state): no later lookup answers Mapped;
 *  P3 every completed transition leaves record == kernel (checked when a
 *     state is recorded and for every chunk of a slab when it is unlocked;
 *     a slab leaves the table only with all of its chunks absent);
 *  P4 no thread touches a slab object after it was freed (every access to
 *     an object, by a lookup, a scan, a lock, an unlock, asserts it);
 *  P5 an illegal transition changes nothing: a call that fails with
 *     EINVAL made no system call and recorded nothing;
 *  P6 no deadlock (invalid end states); in CFG 4, every call completes
 *     under weak fairness (no starvation).
 *  P7 the lock-free scan is linearisable: when it answers "nothing to do"
 *     (or EINVAL), the records were so at one instant during it.
 *
 * Seeded bugs (model/check-model.sh): -DMUT_<name> below; each must make
 * spin report a violation.
 */

#ifndef CFG
#define CFG 1
#endif

/* ---- configurations ------------------------------------------------------
 * CFG 1  race: 3 threads, one call each, any operation on any chunk or on
 *        the range of both slabs; the run starts from any quiescent state
 *        (every chunk U/Q/M/P with the kernel agreeing, each slab present
 *        or absent); slabs are never removed (the RETIRE_LIMIT path:
 *        emptied slabs stay published).  P1 P2 P3 P5 P6 P7.
 * CFG 2  reclaim: 2 writers (two calls each: map, quarantine, unmap of a
 *        chunk of slab 0, or unmap of both slabs) and a reader (two
 *        lookups), from the empty state; slabs are created, emptied,
 *        unpublished, retired, freed after a grace period and their objects
 *        reused.  P1-P6 (P4 above all).
 * CFG 5  ranges: 2 writers, one call each, any operation on chunk 0 or
 *        on the range of both slabs (the lock-free scan, both slab locks
 *        in order, a missing slab rechecked), and a reader looking up chunk
 *        0 or 2; any quiescent start with both chunks of a slab alike;
 *        slabs never removed.  P1-P3 P5-P7.
 * CFG 4  liveness: CFG 2's writers with one call each plus the reader,
 *        checked with -a -f against  <> (every thread done).
 * check-model.sh runs CFG 1 with -DSTART_KEYS=1 -DRANGESET=1 (slab 0
 * only: its chunks 0 and 1); wider choices do not finish in its budget.
 */
#if CFG == 1
#define NT 3
#define OPS 1
#define RLIM 0
#define NOBJ 2
#define ANY_START 1
#elif CFG == 2
#define NT 3
#define OPS 2
#define RLIM 1
#define NOBJ 3
#define RECLAIM 1
#define READER 2              /* thread 2 only looks up */
#elif CFG == 5
#define NT 3
#define OPS 1
#define RLIM 0
#define NOBJ 2
#define ANY_START 1
#define START_EQ 1
#define READER 2
#define RANGE_MIX 1
#elif CFG == 4
#define NT 3
#define OPS 1
#define RLIM 1
#define NOBJ 3
#define RECLAIM 1
#define READER 2
#define LIVE 1
#endif

/* which ranges a call may cover (with_all: the range of both slabs too) */
#ifndef RANGESET
#define RANGESET 0
#endif
#if defined(READER)
/* their own tables below */
#elif RANGESET == 0      /* any chunk, or both slabs */
#define RANGES_OF(o, with_all) CH(o, 0, 0); CH(o, 1, 1); CH(o, 2, 2); CH(o, 3, 3); \
        if :: with_all -> CH(o, 0, 3) :: else fi
#define NCH 34
#elif RANGESET == 1      /* the chunks of slab 0 */
#define RANGES_OF(o, with_all) CH(o, 0, 0); CH(o, 1, 1)
#define NCH 14
#elif RANGESET == 2      /* a chunk of each slab, or both slabs */
#define RANGES_OF(o, with_all) CH(o, 0, 0); CH(o, 2, 2); \
        if :: with_all -> CH(o, 0, 3) :: else fi
#define NCH 20
#elif RANGESET == 3      /* slab 0's first chunk, or both slabs */
#define RANGES_OF(o, with_all) CH(o, 0, 0); if :: with_all -> CH(o, 0, 3) :: else fi
#define NCH 13
#endif
#ifndef START_KEYS
#define START_KEYS 2
#endif

#define NK 2                  /* slab keys */
#define CPS 2                 /* chunks per slab */
#define NC 4
#define NONE 7                /* no object */
#define ALL 4                 /* a range: chunks 0-3, both slabs */

/* chunk states (chunk_state.h) */
#define U 0
#define Q 1
#define M 2
#define P 3
#define LEAVING 4

/* the kernel's view of a chunk */
#define K_ABSENT 0
#define K_NONE 1               /* mapped PROT_NONE */
#define K_RW 2

/* operations (enum chunk_op) and the lookup */
#define OP_MAP 0
#define OP_QUAR 1
#define OP_MARK 2
#define OP_PROT 3
#define OP_DECO 4
#define OP_UNMAP 5
#define OP_LOOK 6

/* actions (enum chunk_action) */
#define A_NONE 0
#define A_ILL 1
#define A_REC 2
#define A_FRESH 3
#define A_RESV 4
#define A_COMMIT 5
#define A_PROT 6
#define A_DECO 7
#define A_UNMAP 8

/* object (struct slab) life */
#define O_FREE 0
#define O_LIVE 1               /* published */
#define O_DEAD 2               /* unpublished, not yet on the retire list */
#define O_RETIRED 3            /* retired, tagged before any grace period began */
#define O_DUE 4                /* a grace period began after its tag */

/* the choice tables (see ch_op below) */
#define CH(o, f, l) ch_op[nch_fill] = o; ch_cf[nch_fill] = f; ch_cl[nch_fill] = l; nch_fill++
#if defined(RANGE_MIX)
#define NCH 12
#define NRCH 2
inline fill_choices() {        /* writers: every op on chunk 0 or both slabs */
    gi = OP_MAP;
    do
    :: gi <= OP_UNMAP -> CH(gi, 0, 0); CH(gi, 0, 3); gi++
    :: else -> break
    od;
    gi = 0;
    CH(OP_LOOK, 0, 0); CH(OP_LOOK, 2, 2)
}
#elif defined(READER)
#define NCH 4
#define NRCH 1
inline fill_choices() {        /* writers: 0-3; the reader: 4 */
    CH(OP_MAP, 0, 0); CH(OP_QUAR, 1, 1); CH(OP_UNMAP, 0, 0); CH(OP_UNMAP, 0, 3);
    CH(OP_LOOK, 0, 0)
}
#else
/* every operation over each range of RANGESET; lookups of single chunks */
inline fill_choices() {
    gi = OP_MAP;
    do
    :: gi <= OP_UNMAP -> RANGES_OF(gi, 1); gi++
    :: else -> break
    od;
    RANGES_OF(OP_LOOK, 0);
    gi = 0
}
#endif

#ifndef NRCH
#define NRCH 0
#endif
#define NTOT (NCH + NRCH)
#if OPS == 1
#define NQ NCH
#define NRQ NRCH
#define PROG(q) (q)
#else
#define NQ (NCH * NCH)
#define NRQ (NRCH * NRCH)
#define PROG(q) ((q) / NCH + NTOT * ((q) % NCH))
#endif

byte kernel[NC];
byte table[NK] = NONE;         /* the slab table: key -> object */
byte ost[NOBJ];                /* O_* */
bit olock[NOBJ];               /* the slab's mutex */
bit dead[NOBJ];
byte pins[NOBJ];
byte live[NOBJ];               /* chunks not Unmapped */
byte st[NOBJ * CPS];           /* the state bytes */

/* RCU (urcu-bp), abstracted: a reader is inside a section or not; a grace
 * period waits for every reader that was inside when it began (gpwait). */
bit insec[NT];
bit gpwait[NT];

/* The lock-free scan's seqlock, abstracted without counters: scanned[t]
 * has a bit per object whose (even) version thread t's scan read; a write
 * to such an object, or a slab creation while t scans, sets changed[t]:
 * exactly when a re-read of the versions or of `creations` would differ. */
byte scanned[NT];
bit scanning[NT];
bit changed[NT];

byte finished;                 /* threads done */

/* The calls a thread may make, a table filled by init (constant, so not
 * part of the state): choice i is op ch_op[i] over chunks ch_cf[i]..ch_cl[i].
 * A thread's program is one choice (OPS 1) or two (OPS 2: prog % NCH, then
 * prog / NCH).  Threads with the same code are interchangeable, so init
 * gives them programs in non-decreasing order (symmetry reduction by hand):
 * every multiset of programs is explored once, not in every order. */
#define MAXCH 40
hidden byte ch_op[MAXCH], ch_cf[MAXCH], ch_cl[MAXCH];
hidden byte nch_fill;

hidden byte gi, gs, ga, gk;    /* scratch, inside single steps only */

#define REVOKES(a) ((a) == A_PROT || (a) == A_DECO || (a) == A_UNMAP)
#define TARGET(op) ((op) == OP_MAP || (op) == OP_MARK -> M : ((op) == OP_QUAR || (op) == OP_DECO -> Q : ((op) == OP_PROT -> P : U)))
/* chunk_action() == ACT_NONE / ACT_ILLEGAL, for s without LEAVING */
#define NOTHING(op, s) (((op) == OP_MAP && (s) == M) || ((op) == OP_QUAR && (s) != U) || \
                        ((op) == OP_MARK && (s) == M) || ((op) == OP_PROT && (s) == P) || \
                        ((op) == OP_DECO && (s) == Q) || ((op) == OP_UNMAP && (s) == U))
#define ILLEGAL(op, s) (((op) == OP_PROT && ((s) == U || (s) == Q)) || ((op) == OP_DECO && (s) == U))

inline action(op, s, a) {      /* chunk_action(): s without LEAVING */
    if
    :: op == OP_MAP -> if :: (s) == U -> a = A_FRESH :: (s) == M -> a = A_NONE :: else -> a = A_COMMIT fi
    :: op == OP_QUAR -> if :: (s) == U -> a = A_RESV :: else -> a = A_NONE fi
    :: op == OP_MARK -> if :: (s) == M -> a = A_NONE :: else -> a = A_REC fi
    :: op == OP_PROT -> if :: (s) == M -> a = A_PROT :: (s) == P -> a = A_NONE :: else -> a = A_ILL fi
    :: op == OP_DECO -> if :: (s) == U -> a = A_ILL :: (s) == Q -> a = A_NONE :: else -> a = A_DECO fi
    :: op == OP_UNMAP -> if :: (s) == U -> a = A_NONE :: else -> a = A_UNMAP fi
    fi
}

/* P3: record s (LEAVING aside) of chunk c agrees with the kernel */
#define AGREES(s, c) ((((s) & 3) == U && kernel[c] == K_ABSENT) || \
                      (((s) & 3) == M && kernel[c] == K_RW) || \
                      ((((s) & 3) == Q || ((s) & 3) == P) && kernel[c] == K_NONE))

#define FREED(o) (ost[o] == O_FREE)
#define SLOT(o, c) st[(o) * CPS + (c) % CPS]

/* A write to object o's states: scans that read its version see a change
 * (slab_write_begin). */
inline write_begin(o) {
    gi = 0;
    do
    :: gi < NT -> if :: (scanned[gi] >> (o)) & 1 -> changed[gi] = 1 :: else fi; gi++
    :: else -> break
    od;
    gi = 0
}

/* ---- the slab table (slab_table.c): one step each under the table lock --- */

/* slab_table_get_or_create: the slab of key, created if missing, pinned. */
inline get_or_create(key, o) {
    atomic {
        if
        :: table[key] != NONE -> o = table[key]
        :: else ->
            gi = 0;
            do
            :: gi < NOBJ && ost[gi] != O_FREE -> gi++
            :: else -> break
            od;
            assert(gi < NOBJ);     /* RETIRE_LIMIT bounds what is not free */
            o = gi;
            ost[o] = O_LIVE; dead[o] = 0; live[o] = 0; pins[o] = 0;
            st[o * CPS] = U; st[o * CPS + 1] = U;
            table[key] = o;        /* slot_publish */
            /* creations++: every running scan sees it */
            gi = 0;
            do
            :: gi < NT -> if :: scanning[gi] -> changed[gi] = 1 :: else fi; gi++
            :: else -> break
            od;
            gi = 0
        fi;
        pins[o]++
    }
}

/* slab_table_unpublish (lock of o held, live[o] == 0): out of the table,
 * dead, unless RETIRE_LIMIT objects wait already.  rm: removed or not. */
inline unpublish(key, o, rm) {
    atomic {
        gi = 0; gk = 0;
        do
        :: gi < NOBJ -> if :: ost[gi] >= O_DEAD -> gk++ :: else fi; gi++
        :: else -> break
        od;
        if
        :: gk >= RLIM -> rm = 0
        :: else ->
            assert(kernel[(key) * CPS] == K_ABSENT && kernel[(key) * CPS + 1] == K_ABSENT);  /* P3 */
            table[key] = NONE;
            dead[o] = 1;
            ost[o] = O_DEAD;
            rm = 1
        fi;
        gi = 0; gk = 0
    }
}

/* slab_table_retire: on the retire list, tagged (reclaim_tag after the
 * unpublish); the reclaimer may free it from now on. */
inline retire(o) {
    atomic { assert(!FREED(o)); ost[o] = O_RETIRED }
}

/* ---- RCU read-side sections (rcu.h) -------------------------------------- */

#define ENTER insec[t] = 1
#define EXIT insec[t] = 0; gpwait[t] = 0

/* ---- lookups (mapper.c: state_in_section, is_mapped, already_done) ------
 * One section: the table probe, then the acquire load of the state byte.
 * The second step is where the answer is given: P2 is checked there. */
inline lookup(c) {
    atomic { ENTER; lo = table[(c) / CPS] };
    atomic {
        if
        :: lo == NONE -> gs = U
        :: else -> assert(!FREED(lo)); gs = SLOT(lo, c)                 /* P4 */
        fi;
        assert(gs != M || kernel[c] == K_RW);                            /* P2 */
        EXIT; lo = 0; gs = 0
    }
}

/* already_done (and transition()'s own look): nothing to do if the chunk
 * is where op wants it and not LEAVING; then ensure_mapped's caller uses
 * the memory at once (P2).  fast = 1: done. */
#ifdef MUT_FAST_TRUSTS_LEAVING
#define NOT_LEAVING(s) true
#else
#define NOT_LEAVING(s) !((s) & LEAVING)
#endif
inline fast_path(op, c) {
    atomic { ENTER; lo = table[(c) / CPS] };
    atomic {
        if
        :: lo == NONE -> gs = U
        :: else -> assert(!FREED(lo)); gs = SLOT(lo, c)                 /* P4 */
        fi;
        if
        :: NOTHING(op, gs & 3) && NOT_LEAVING(gs) ->
           assert(op != OP_MAP || kernel[c] == K_RW);                    /* P2 */
           fast = 1
        :: else -> fast = 0
        fi;
        EXIT; lo = 0; gs = 0
    }
}

/* ---- the locking walk (walk.c) ------------------------------------------ */

#ifdef MUT_UNPIN_EARLY
#define EARLY_UNPIN(o) pins[o]--
#define UNPIN(o) skip
#else
#define EARLY_UNPIN(o) skip
#define UNPIN(o) pins[o]--
#endif
#ifdef MUT_NO_DEAD_RECHECK
#define IS_DEAD(o) false
#else
#define IS_DEAD(o) dead[o]
#endif

/* walk_window_locked's check of the chunks of key in the range, done
 * under the slab's lock (only the holder writes them): err = illegal. */
inline check_chunks(key, o) {
    gi = (key * CPS < cf -> cf : key * CPS);
    do
    :: gi <= cl && gi < key * CPS + CPS ->
       if :: ILLEGAL(op, SLOT(o, gi) & 3) -> err = 1 :: else fi; gi++
    :: else -> break
    od;
    gi = 0
}

/* settle_or_lock (walk.c): a one-chunk call waiting for a contended lock
 * looks at its chunk, outside any section, the slab pinned; if the holder
 * has settled it where op wants it (not Unmapped: a dead slab's chunks all
 * are; not LEAVING), the call is done, and ensure_mapped's caller uses the
 * memory at once (P2). */
#ifdef MUT_SETTLE_TRUSTS_LEAVING
#define SETTLED(op, s) ((s) & 3) != U && NOTHING(op, (s) & 3)
#else
#define SETTLED(op, s) ((s) & 3) != U && NOTHING(op, (s) & 3) && !((s) & LEAVING)
#endif

/* lock_slab: the lookup and a trylock inside a section (under the lock, a
 * dead slab is let go and looked up again); if contended, pin, leave the
 * section, then (one chunk) maybe find it settled, else wait for the lock;
 * if missing, get_or_create (pinned) when op creates, else o = NONE (all
 * Unmapped: EINVAL if op is illegal there).  Settled: o = NONE, nothing
 * held, nothing missing: the walk has nothing to do. */
inline lock_slab(key, o) {
    do
    :: atomic {
           ENTER; o = table[key];
           if :: o == NONE -> EXIT :: else fi
       };
       if
       :: o != NONE ->
          atomic {
              assert(!FREED(o));                                     /* P4 */
              if
              :: olock[o] == 0 && IS_DEAD(o) -> EXIT                 /* look again */
              :: olock[o] == 0 && !IS_DEAD(o) ->
                 olock[o] = 1; check_chunks(key, o); EXIT; break
              :: else -> pins[o]++; EXIT; w = 1; found = 1         /* slab_pin */
              fi
          }
       :: else ->
          if
          :: !create -> miss = 1; err = (op == OP_PROT || op == OP_DECO); break
          :: else -> get_or_create(key, o); w = 1
          fi
       fi;
       if
       :: w && found && cf == cl ->
          atomic {                                             /* settle_or_lock */
              assert(!FREED(o));                                     /* P4 */
              if
              :: SETTLED(op, SLOT(o, cf)) ->
                 assert(op != OP_MAP || kernel[cf] == K_RW);         /* P2 */
                 pins[o]--; o = NONE; w = 0; found = 0
              :: else -> found = 0   /* not yet: wait for the lock below */
              fi
          };
          if :: o == NONE -> break :: else fi
       :: else
       fi;
       if
       :: w ->
          EARLY_UNPIN(o);
          atomic {
              olock[o] == 0 -> olock[o] = 1;
              assert(!FREED(o));                                     /* P4 */
              w = 0; found = 0;
              if
              :: IS_DEAD(o) -> olock[o] = 0; UNPIN(o)               /* look again */
              :: else -> UNPIN(o); check_chunks(key, o); break
              fi
          }
       :: else
       fi
    od
}

/* Unlock a held slab (release_all): an emptied slab leaves the table
 * first.  P3: the records of its chunks agree with the kernel. */
inline unlock_slab(key, o, rm) {
    if
    :: live[o] == 0 -> unpublish(key, o, rm)
    :: else
    fi;
    atomic {
        assert(!FREED(o));                                            /* P4 */
        /* (a dead slab's records speak for nothing: a successor may
         * already hold its chunks) */
        assert(dead[o] || (AGREES(st[o * CPS], (key) * CPS) && AGREES(st[o * CPS + 1], (key) * CPS + 1)));
        olock[o] = 0
    }
}

#ifdef MUT_RETIRE_LOCKED
/* retired before it is unlocked: the reclaimer may free it under us */
inline release_all() {
    if :: h0 != NONE && live[h0] == 0 -> unpublish(0, h0, rm0) :: else fi;
    if :: h1 != NONE && live[h1] == 0 -> unpublish(1, h1, rm1) :: else fi;
    if :: rm0 -> retire(h0) :: else fi;
    if :: rm1 -> retire(h1) :: else fi;
    if :: h0 != NONE -> atomic { assert(!FREED(h0)); olock[h0] = 0 } :: else fi;
    if :: h1 != NONE -> atomic { assert(!FREED(h1)); olock[h1] = 0 } :: else fi;
    d_step { h0 = NONE; h1 = NONE; rm0 = 0; rm1 = 0 }
}
#else
inline release_all() {
    if :: h0 != NONE -> unlock_slab(0, h0, rm0) :: else fi;
    if :: h1 != NONE -> unlock_slab(1, h1, rm1) :: else fi;
    if :: rm0 -> retire(h0) :: else fi;
    if :: rm1 -> retire(h1) :: else fi;
    d_step { h0 = NONE; h1 = NONE; rm0 = 0; rm1 = 0 }
}
#endif

#define HELD(c) ((c) / CPS == 0 -> h0 : h1)

/* One chunk's system call and record (flush_run; a run of one chunk):
 * mark_leaving before a revoking call, the call, then settle (record).
 * The chunk's slab is locked: only we write its state, so reading it again
 * in each step gives what was read at the start. */
inline chunk_run(op, o, c) {
#ifndef MUT_LEAVING_AFTER
    atomic {                                                 /* mark_leaving */
        action(op, SLOT(o, c), ga);
        if
        :: REVOKES(ga) && SLOT(o, c) == M -> write_begin(o); SLOT(o, c) = M | LEAVING
        :: else
        fi;
        ga = 0
    };
#endif
#ifdef MUT_PUBLISH_EARLY
    atomic {                                   /* the record before the call */
        gs = SLOT(o, c) & 3;
        write_begin(o); SLOT(o, c) = TARGET(op);
        live[o] = live[o] + (TARGET(op) != U) - (gs != U);
        action(op, gs, ga); pend = ga; gs = 0; ga = 0
    };
#endif
    atomic {                                    /* the system call */
#ifdef MUT_PUBLISH_EARLY
        ga = pend;
#else
        action(op, SLOT(o, c) & 3, ga);
#endif
        if
        :: ga == A_FRESH || ga == A_RESV ->
            assert(kernel[c] == K_ABSENT);            /* P1: mmap NOREPLACE */
            kernel[c] = (ga == A_FRESH -> K_RW : K_NONE)
        :: ga == A_COMMIT -> assert(kernel[c] == K_NONE); kernel[c] = K_RW
        :: ga == A_REC -> kernel[c] = K_RW      /* mark: the caller mapped it */
        :: ga == A_PROT || ga == A_DECO -> kernel[c] = K_NONE
        :: ga == A_UNMAP -> kernel[c] = K_ABSENT
        fi;
        /* P2: a revoking call starts only once no lookup can read Mapped */
        assert(!REVOKES(ga) || SLOT(o, c) != M);
        ga = 0
    };
#ifdef MUT_LEAVING_AFTER
    atomic {
        action(op, SLOT(o, c), ga);
        if
        :: REVOKES(ga) && SLOT(o, c) == M -> write_begin(o); SLOT(o, c) = M | LEAVING
        :: else
        fi;
        ga = 0
    };
#endif
#ifndef MUT_PUBLISH_EARLY
    atomic {                                          /* settle: record() */
        gs = SLOT(o, c) & 3;
        write_begin(o);
        SLOT(o, c) = TARGET(op);
        live[o] = live[o] + (TARGET(op) != U) - (gs != U);
        assert(AGREES(TARGET(op), c));                                /* P3 */
        gs = 0
    }
#endif
}

/* walk_window: lock the slabs of the range ascending (creating them if op
 * creates) and check every chunk (an illegal one fails the call before any
 * system call); if a slab found missing has appeared since, unlock all and
 * start again; then the chunks' runs; then release_all. */
inline walk(op) {
    create = (op == OP_MAP || op == OP_QUAR || op == OP_MARK);
    do
    :: miss = 0; err = 0;
#ifdef MUT_DESCENDING
       if   /* one path, unmap of both slabs, locks in descending order */
       :: cf / CPS == 0 && cl / CPS == 1 && op == OP_UNMAP ->
          lock_slab(1, h1); lock_slab(0, h0)
       :: else ->
          if :: cf / CPS == 0 -> lock_slab(0, h0) :: else fi;
          if :: cl / CPS == 1 && err == 0 -> lock_slab(1, h1) :: else fi
       fi;
#else
       if :: cf / CPS == 0 -> lock_slab(0, h0) :: else fi;
       if :: cl / CPS == 1 && err == 0 -> lock_slab(1, h1) :: else fi;
#endif
       if
       :: err == 0 && miss ->
          /* missing_slab_appeared: one section, a probe per missing key */
          atomic {
              if
              :: (h0 == NONE && cf / CPS == 0 && table[0] != NONE) ||
                 (h1 == NONE && cl / CPS == 1 && table[1] != NONE) -> miss = 1
              :: else -> miss = 0
              fi
          }
       :: else -> miss = 0
       fi;
       if
       :: miss -> release_all()
       :: else -> break
       fi
    od;
    if
    :: err == 0 ->
        c = cf;
        do
        :: c > cl -> break
        :: c <= cl && (HELD(c) == NONE || NOTHING(op, SLOT(HELD(c), c) & 3)) -> c++
        :: c <= cl && HELD(c) != NONE && !NOTHING(op, SLOT(HELD(c), c) & 3) ->
           changes = 1;
           if
           :: c / CPS == 0 -> chunk_run(op, h0, c)
           :: else -> chunk_run(op, h1, c)
           fi;
           c++
        od;
        c = 0
    :: else
    fi;
    release_all();
    /* P5: an illegal call changed nothing */
    assert(err == 0 || changes == 0);
    d_step { create = 0; miss = 0; err = 0 }
}

/* scan_window (walk.c): the lock-free check of a range of both slabs.
 * verdict 1: nothing to do; 2: EINVAL; 0: take the locking walk.  lin is
 * the ghost of P7: what the records were, all at once, at the last load
 * (the instant the code claims). */
inline scan_ghost(op) {
    gi = 0; gk = 1; lin = 0;
    do
    :: gi < NC ->
        if
        :: table[gi / CPS] == NONE -> gs = U
        :: else -> gs = SLOT(table[gi / CPS], gi)
        fi;
        if :: !NOTHING(op, gs & 3) || (gs & LEAVING) -> gk = 0 :: else fi;
        if :: ILLEGAL(op, gs & 3) -> lin = 2 :: else fi;
        gi++
    :: else -> break
    od;
    if :: lin != 2 && gk -> lin = 1 :: else fi;
    gi = 0; gk = 0; gs = 0
}

inline scan(op) {
    atomic { ENTER; scanning[t] = 1; changed[t] = 0; scanned[t] = 0; verdict = 1; k = 0 };
    do
    :: k < NK && verdict == 1 ->
       atomic {
           lo = table[k]; scan_ghost(op);
           if
           :: lo == NONE ->
              verdict = (ILLEGAL(op, U) -> 2 : (NOTHING(op, U) -> 1 : 0)); k++
           :: else
           fi
       };
       if
       :: lo != NONE ->
          atomic { assert(!FREED(lo)); scanned[t] = scanned[t] | (1 << lo) };  /* version: even */
          do
          :: c < CPS && verdict == 1 ->
             atomic {
                 assert(!FREED(lo));                                     /* P4 */
                 gs = st[lo * CPS + c];
                 if
                 :: ILLEGAL(op, gs & 3) -> verdict = 2
                 :: !ILLEGAL(op, gs & 3) && (!NOTHING(op, gs & 3) || (gs & LEAVING)) -> verdict = 0
                 :: else
                 fi;
                 scan_ghost(op);
                 c++
             }
          :: else -> break
          od;
          atomic { c = 0; lo = 0; k++ }
       :: else
       fi
    :: else -> break
    od;
    atomic {
#ifndef MUT_SCAN_NO_RECHECK
        if :: verdict != 0 && changed[t] -> verdict = 0 :: else fi;   /* the re-check */
#endif
        /* P7 (and so P2 for a scan of ensure_mapped that answers done) */
        assert(verdict == 0 || verdict == lin);
        scanning[t] = 0; changed[t] = 0; scanned[t] = 0; lin = 0; k = 0;
        EXIT
    }
}

/* ---- a thread ----------------------------------------------------------- */

proctype thread(byte t; byte prog) {
    byte n, op, cf, cl, k, c, lo, h0 = NONE, h1 = NONE, verdict, lin, pend;
    bit w, found, miss, err, create, rm0, rm1, changes, fast;
    for (n : 1 .. OPS) {
        d_step {   /* the call: choice prog % NTOT, then prog / NTOT */
            gi = (n == 1 -> prog % NTOT : prog / NTOT);
            op = ch_op[gi]; cf = ch_cf[gi]; cl = ch_cl[gi]; gi = 0
        };
        if
        :: op == OP_LOOK -> lookup(cf)                  /* is_mapped / state */
        :: op != OP_LOOK && cf == cl ->
           fast_path(op, cf);                           /* already_done */
           if
           :: fast -> skip
           :: else -> walk(op)
           fi
        :: else ->
           scan(op);
           if
           :: verdict == 0 -> walk(op)
           :: else
           fi
        fi;
        d_step { op = 0; cf = 0; cl = 0; verdict = 0; changes = 0; fast = 0 }
    };
    finished++
}

/* ---- the reclaimer (reclaim.c) -------------------------------------------
 * Asleep until something is retired; a round: start a grace period (every
 * object retired so far is due after it), wait for the readers inside a
 * section at its start, free what is due and unpinned (free_due), again if
 * something is left (a pinned slab). */
#ifdef RECLAIM
proctype reclaimer() {
    byte i;
end_sleep:
    do
    :: atomic {
           (ost[0] >= O_RETIRED || ost[1] >= O_RETIRED || ost[2] >= O_RETIRED) ->
           i = 0;
           do
           :: i < NOBJ -> if :: ost[i] == O_RETIRED -> ost[i] = O_DUE :: else fi; i++
           :: else -> break
           od;
           i = 0;
           do
           :: i < NT -> gpwait[i] = insec[i]; i++
           :: else -> break
           od;
           i = 0
       };
#ifndef MUT_NO_GRACE
       (gpwait[0] == 0 && gpwait[1] == 0 && gpwait[2] == 0);   /* synchronize_rcu */
#endif
       atomic {
           i = 0;
           do
           :: i < NOBJ ->
              if
              :: ost[i] == O_DUE && pins[i] == 0 ->
                 st[i * CPS] = 0; st[i * CPS + 1] = 0; live[i] = 0; dead[i] = 0;
                 ost[i] = O_FREE
              :: else
              fi;
              i++
           :: else -> break
           od;
           i = 0
       }
    od
}
#endif

init {
    byte p0, p1, p2;
#ifdef ANY_START
    byte ik, ii, is;
#endif
    atomic {
#ifdef ANY_START
        /* any quiescent state: each slab absent, or present with any
         * records (emptied slabs stay when RETIRE_LIMIT is reached) */
        for (ik : 0 .. START_KEYS - 1) {
            if
            :: skip
            :: table[ik] = ik; ost[ik] = O_LIVE;
               for (ii : 0 .. CPS - 1) {
#ifdef START_EQ
                   /* both chunks of a slab alike */
                   if :: ii > 0 -> skip :: else -> if :: is = U :: is = Q :: is = M :: is = P fi fi;
#else
                   if :: is = U :: is = Q :: is = M :: is = P fi;
#endif
                   st[ik * CPS + ii] = is;
                   kernel[ik * CPS + ii] = (is == U -> K_ABSENT : (is == M -> K_RW : K_NONE));
                   live[ik] = live[ik] + (is != U)
               }
            fi
        };
        ik = 0; ii = 0; is = 0;
#endif
        fill_choices();
        assert(nch_fill == NCH + NRCH);
        /* programs in non-decreasing order for interchangeable threads:
         * q = first * NCH + second, prog = first + NTOT * second */
        select (p0 : 0 .. NQ - 1);
        p1 = p0;
        do :: p1 < NQ - 1 -> p1++ :: break od;
#ifdef READER
        /* thread 2 reads: choices NCH.. of its own */
        select (p2 : 0 .. NRQ - 1);
        p2 = (OPS == 1 -> NCH + p2 : NCH + p2 % NRCH + NTOT * (NCH + p2 / NRCH));
#else
        p2 = p1;
        do :: p2 < NQ - 1 -> p2++ :: break od;
        p2 = PROG(p2);
#endif
        p0 = PROG(p0); p1 = PROG(p1);
        run thread(0, p0); run thread(1, p1); run thread(2, p2);
#ifdef RECLAIM
        run reclaimer()
#endif
    }
}

#ifdef LIVE
ltl progress { <> (finished == NT) }
#endif
