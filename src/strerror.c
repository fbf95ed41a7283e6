/* Messages for the errors the library returns, in its own words (libc's
 * strerror() is not async-signal-safe and speaks of files and devices). */
#include "config.h"

#include <errno.h>

#include "mmapper.h"

MMAPPER_API const char *mmapper_strerror(int err)
{
    switch (err) {
    case 0:
        return "success";
    case -EINVAL:
        return "invalid argument or illegal chunk transition";
    case -ENOMEM:
        return "out of memory or address space (or vm.max_map_count reached)";
    case -EEXIST:
        return "address range holds a mapping the mapper does not own";
    case -EPERM:
        return "operation not permitted by the kernel";
    case -EACCES:
        return "protection not permitted by the kernel";
    case -EAGAIN:
        return "resource temporarily unavailable";
    case -EFAULT:
        return "the OS layer returned an inconsistent result";
    default:
        return err < 0 ? "unexpected error from the OS layer" : "not an error code";
    }
}
