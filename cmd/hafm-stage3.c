/* hafm-stage3 - stage 3 of HAFM (see hafm-stage3(1)); the program is lib/stage_cli.c, shared by
 * the three stages, which differ only in their model and tracks. */
#include "hafm/stage_cli.h"

int main(int argc, char **argv) { return hafm_stage_cli(argc, argv, 3); }
