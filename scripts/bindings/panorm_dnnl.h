/* The one header jextract reads: oneDNN's C API. What is extracted from it is
 * limited by dnnl-symbols.txt next to this file. */
#include <oneapi/dnnl/dnnl.h>
