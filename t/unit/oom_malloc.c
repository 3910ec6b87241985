
/*
 * Copyright (C) ngx_http_apikey_module developers
 *
 * LD_PRELOAD for t/admin_oom.t: malloc() fails for the sizes listed in
 * APIKEY_OOM_SIZES ("17304,301") while the file APIKEY_OOM_FILE exists,
 * so that one chosen allocation of nginx or the module runs out of memory.
 */


#include <errno.h>
#include <stdlib.h>
#include <unistd.h>


extern void *__libc_malloc(size_t size);


void *
malloc(size_t size)
{
    char        *p, *end;
    const char  *file, *sizes;

    file = getenv("APIKEY_OOM_FILE");
    sizes = getenv("APIKEY_OOM_SIZES");

    if (file != NULL && sizes != NULL && access(file, F_OK) == 0) {

        for (p = (char *) sizes; *p; p = end + (*end == ',')) {
            if (strtoul(p, &end, 10) == size) {
                errno = ENOMEM;
                return NULL;
            }

            if (end == p) {
                break;
            }
        }
    }

    return __libc_malloc(size);
}
