/* hafm/stage_cli.h - the command-line program shared by hafm-stage1, -stage2 and -stage3. */
#ifndef HAFM_STAGE_CLI_H
#define HAFM_STAGE_CLI_H

/* Runs the whole command for stage 1, 2 or 3; returns the exit status (errors exit directly). */
int hafm_stage_cli(int argc, char **argv, int stage);

#endif
