/* hafm.h - the public interface of libhafm. */
#ifndef HAFM_H
#define HAFM_H
#include "hafm/common.h"
#include "hafm/stream.h"
#include "hafm/audio.h"
#include "hafm/safetensors.h"
#include "hafm/linalg.h"
#endif
