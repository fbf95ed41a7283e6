/*
 * A model of mmapper's chunk protocol, as src/ implements it, for spin.
 *
 * Two slabs of two chunks (keys 0 and 1), three threads, a reclaimer.
 *  - The slab table maps a key to a slab object (three objects, so that a
 *    slab removed and created again gets another object or a recycled one).
 *  - Each object has a lock, pins, a dead flag, live count and two state
 *    bytes (U Q M P, plus LEAVING while access is being revoked).
 *  - The kernel's view of each chunk: absent, PROT_NONE, or read-write.
 *  - RCU: a reader's section is a counter (odd: inside); a grace period
 *    waits for every reader that was inside when it began (urcu-bp).
 *  - Transitions (walk.c): slabs of the range locked in ascending key order
 *    (get_or_create + pin outside sections, then lock, then the dead
 *    recheck); revoking chunks marked LEAVING before the system call; states
 *    published after it; an emptied slab unpublished (tombstone), retired,
 *    and freed by the reclaimer after a grace period once unpinned.
 *  - Lookups (mapper.c): one read-side section, table then state byte.
 *    The fast path of ensure_mapped is such a lookup that finds Mapped.
 *
 * Properties (asserts, checked at every step, and invalid end states):
 *  P1 one fresh-map system call per chunk per Unmapped->Mapped epoch;
 *  P2 a lookup that answers Mapped does so while the kernel has the chunk
 *     read-write (so no revoking call started before it);
 *  P3 every completed chunk transition leaves record == kernel;
 *  P4 no thread reads a slab object after it was freed;
 *  P5 an illegal transition changes nothing;
 *  P6 no deadlock (spin's invalid end states), and with -DNP / weak
 *     fairness, no starvation (ltl below).
 */

#define NSLAB 2
#define CPS 2
#define NCHUNK 4
#define NOBJ 3
#define NTHREAD 3
#define OPS 2            /* operations per thread */
#define NONE 255

#define U 0
#define Q 1
#define M 2
#define P 3
#define LEAVING 4

#define K_ABSENT 0
#define K_NONE 1
#define K_RW 2

/* operations */
#define OP_MAP 0
#define OP_QUAR 1
#define OP_PROT 2
#define OP_DECO 3
#define OP_UNMAP 4
#define OP_LOOK 5
#define OP_UNMAP_ALL 6   /* one call over both slabs: lock ordering */

byte kernel[NCHUNK];
byte fresh[NCHUNK];

byte table[NSLAB] = NONE;
#define O_FREE 0
#define O_LIVE 1
#define O_RETIRED 2
byte objstate[NOBJ];
byte objkey[NOBJ];
bit objlock[NOBJ];
bit dead[NOBJ];
byte pins[NOBJ];
byte live[NOBJ];
byte st[NOBJ * CPS];
bit tablelock;

byte rcu[NTHREAD];       /* odd: inside a read-side section */
byte done_threads;

inline record_matches(o, i, c) {
    /* P3 */
    assert(((st[o * CPS + i] & 3) == U && kernel[c] == K_ABSENT) ||
           ((st[o * CPS + i] & 3) == Q && kernel[c] == K_NONE) ||
           ((st[o * CPS + i] & 3) == M && kernel[c] == K_RW) ||
           ((st[o * CPS + i] & 3) == P && kernel[c] == K_NONE))
}

inline rcu_enter(t) { rcu[t]++ }
inline rcu_exit(t) { rcu[t]++ }

/* The slab for key, created if missing, pinned: under the table lock. */
inline get_or_create(key, o) {
    atomic { tablelock == 0 -> tablelock = 1 };
    if
    :: table[key] != NONE -> o = table[key]
    :: else ->
        /* a free object (three suffice: at most two published, and the
         * reclaimer frees retired ones) */
        if
        :: objstate[0] == O_FREE -> o = 0
        :: objstate[0] != O_FREE && objstate[1] == O_FREE -> o = 1
        :: objstate[0] != O_FREE && objstate[1] != O_FREE && objstate[2] == O_FREE -> o = 2
        fi;
        objkey[o] = key; dead[o] = 0; live[o] = 0;
        st[o * CPS] = U; st[o * CPS + 1] = U;
        objstate[o] = O_LIVE;
        table[key] = o            /* release: published initialised */
    fi;
    pins[o]++;
    tablelock = 0
}

/* Lock the slab of key for a walk (walk.c, lock_slab's pinned path): the
 * pin keeps the object from being freed while we wait for its lock; under
 * the lock, a dead slab is let go (unlock, then unpin) and looked up again;
 * a live one cannot be removed while we hold it, so the pin goes. */
inline lock_slab(key, o) {
    do
    :: get_or_create(key, o);
       atomic { objlock[o] == 0 -> objlock[o] = 1 };
       assert(objstate[o] != O_FREE);      /* P4: pinned, never freed */
       if
       :: dead[o] -> objlock[o] = 0; pins[o]--   /* removed meanwhile */
       :: else -> pins[o]--; break
       fi
    od
}

/* Unlock; an emptied slab leaves the table and is retired. */
inline unlock_slab(key, o) {
    if
    :: live[o] == 0 ->
        atomic { tablelock == 0 -> tablelock = 1 };
        table[key] = NONE;
        dead[o] = 1;
        tablelock = 0;
        objlock[o] = 0;
        objstate[o] = O_RETIRED
    :: else -> objlock[o] = 0
    fi
}

/* One chunk's transition, its slab locked. */
inline transition(op, o, i, c, err) {
    cur = st[o * CPS + i];
    if
    :: op == OP_MAP ->
        if
        :: cur == U -> kernel[c] = K_RW; fresh[c]++; assert(fresh[c] == 1);   /* P1 */
                       st[o * CPS + i] = M; live[o]++
        :: cur == Q || cur == P -> kernel[c] = K_RW; st[o * CPS + i] = M
        :: cur == M -> skip
        fi
    :: op == OP_QUAR ->
        if
        :: cur == U -> kernel[c] = K_NONE; st[o * CPS + i] = Q; live[o]++
        :: else -> skip
        fi
    :: op == OP_PROT ->
        if
        :: cur == U || cur == Q -> err = 1   /* P5: found before any change */
        :: cur == M -> st[o * CPS + i] = M | LEAVING;   /* before the call */
                       kernel[c] = K_NONE; st[o * CPS + i] = P
        :: cur == P -> skip
        fi
    :: op == OP_DECO ->
        if
        :: cur == U -> err = 1
        :: cur == M || cur == P -> st[o * CPS + i] = cur | LEAVING;
                       kernel[c] = K_NONE; st[o * CPS + i] = Q
        :: cur == Q -> skip
        fi
    :: op == OP_UNMAP ->
        if
        :: cur == U -> skip
        :: else -> st[o * CPS + i] = cur | LEAVING;
                   kernel[c] = K_ABSENT; fresh[c] = 0;
                   st[o * CPS + i] = U; live[o]--
        fi
    fi;
    if
    :: err == 0 -> record_matches(o, i, c)
    :: else -> assert(st[o * CPS + i] == cur)   /* P5 */
    fi
}

/* A lookup: one read-side section (mapper.c, state_in_section). */
inline lookup(t, c, answer) {
    rcu_enter(t);
    lo = table[c / CPS];
    if
    :: lo == NONE -> answer = 0
    :: else ->
        assert(objstate[lo] != O_FREE);     /* P4 */
        atomic {
            answer = (st[lo * CPS + c % CPS] == M);
            /* P2: Mapped (without LEAVING) only over a read-write chunk */
            assert(!answer || kernel[c] == K_RW)
        }
    fi;
    rcu_exit(t)
}

proctype worker(byte t) {
    byte n, op, c, key, o, o2, i, cur, err, answer, lo;
    for (n : 1 .. OPS) {
        err = 0;
        if
        :: op = OP_MAP :: op = OP_QUAR :: op = OP_PROT :: op = OP_DECO
        :: op = OP_UNMAP :: op = OP_LOOK :: op = OP_UNMAP_ALL
        fi;
        if :: c = 0 :: c = 1 :: c = 2 :: c = 3 fi;
        key = c / CPS; i = c % CPS;
        if
        :: op == OP_LOOK -> lookup(t, c, answer)
        :: op == OP_MAP ->
            /* the lock-free fast path: already Mapped, nothing to do */
            lookup(t, c, answer);
            if
            :: answer -> skip
            :: else -> lock_slab(key, o); transition(op, o, i, c, err); unlock_slab(key, o)
            fi
        :: op == OP_UNMAP_ALL ->
            /* both slabs, locked in ascending order, then every chunk */
            lock_slab(0, o); lock_slab(1, o2);
            transition(OP_UNMAP, o, 0, 0, err); transition(OP_UNMAP, o, 1, 1, err);
            transition(OP_UNMAP, o2, 0, 2, err); transition(OP_UNMAP, o2, 1, 3, err);
            unlock_slab(1, o2); unlock_slab(0, o)
        :: else -> lock_slab(key, o); transition(op, o, i, c, err); unlock_slab(key, o)
        fi
    };
    done_threads++
}

/* The reclaimer (reclaim.c): it sleeps until something is retired, then a
 * grace period, then frees what is unpinned (else it tries again later). */
proctype reclaimer() {
    byte o, snap[NTHREAD];
end_sleep:
    do
    :: objstate[0] == O_RETIRED -> o = 0; goto round
    :: objstate[1] == O_RETIRED -> o = 1; goto round
    :: objstate[2] == O_RETIRED -> o = 2; goto round
    od;
round:
    /* grace period: every section open now ends (NTHREAD == 3) */
    snap[0] = rcu[0]; snap[1] = rcu[1]; snap[2] = rcu[2];
    (snap[0] % 2 == 0 || rcu[0] != snap[0]);
    (snap[1] % 2 == 0 || rcu[1] != snap[1]);
    (snap[2] % 2 == 0 || rcu[2] != snap[2]);
    if
    :: pins[o] == 0 ->
       /* freed: poisoned, then back in the pool (one step) */
       atomic { st[o * CPS] = 99; st[o * CPS + 1] = 99; objstate[o] = O_FREE }
    :: else -> skip   /* a writer waits for its lock: next round */
    fi;
    goto end_sleep
}

init {
    atomic {
        run worker(0); run worker(1); run worker(2);
        run reclaimer()
    }
}
