/* The token that carries the grace-period ordering to ThreadSanitizer. */
#include "config.h"

#include "rcu.h"

#ifdef MM_TSAN
char mm_rcu_grace_period_token;
#endif
