// oneDNN 2.x C API (Debian libdnnl-dev).
#include <oneapi/dnnl/dnnl.h>
