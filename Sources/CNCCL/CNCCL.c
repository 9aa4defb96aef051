// Header-only: see include/CNCCL.h. SwiftPM builds a C target from at least one source file.
#include "CNCCL.h"
