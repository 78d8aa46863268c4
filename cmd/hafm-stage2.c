/* hafm-stage2 - stage 2 of HAFM (see hafm-stage2(1)); the program is lib/stage_cli.c, shared by
 * the three stages, which differ only in their model and tracks. */
#include "hafm/stage_cli.h"

int main(int argc, char **argv) { return hafm_stage_cli(argc, argv, 2); }
