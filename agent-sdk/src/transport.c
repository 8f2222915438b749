/* transport.c - see internal.h (being written) */
#include "internal.h"
