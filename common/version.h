/* version.h: the release of slmd, its tools and the client library. */
#ifndef SLM_COMMON_VERSION_H
#define SLM_COMMON_VERSION_H

#define SLM_VERSION "0.1.0"

#endif
