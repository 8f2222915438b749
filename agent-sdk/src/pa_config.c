/* pa_config.c - see internal.h (being written) */
#include "internal.h"
