/*
 * header_alone.c - panelagent.h on its own, compiled by tests/abi as C99,
 * C11, C++11 and C++17 with warnings as errors: the header includes what it
 * needs and is valid in each language.  The uses below make the compiler
 * look at the declarations and constants, not only parse them.
 */
#include <panelagent.h>

int abi_header_alone(void);

int abi_header_alone(void)
{
    panelagent_frame *f = 0;
    panelagent_ack_fn ack = 0;
    panelagent_error_fn on_err = 0;
    panelagent_log_fn log = 0;
    const panelagent_info *info = panelagent_version(PANELAGENT_INFO_AGE);
    (void)ack;
    (void)on_err;
    (void)log;
    (void)f;
    return (info != 0 ? (int)info->version_num : 0) + PANELAGENT_VERSION_NUM +
           (int)PANELAGENT_EINTERNAL + (int)PANELAGENT_OPT_IDLE_TIMEOUT_MS +
           (int)PANELAGENT_STAT_UNDELIVERED + PANELAGENT_KIND_WOWZA + PANELAGENT_LOG_DEBUG +
           PANELAGENT_QUEUE_DROP_OLDEST;
}
