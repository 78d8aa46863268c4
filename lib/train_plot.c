/* train_plot.c - training curves from a hafm-train log, drawn by gnuplot. */
#include "hafm/train.h"

#include <cJSON.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static int num(const cJSON *o, const char *k, double *v)
{
    const cJSON *x = cJSON_GetObjectItemCaseSensitive(o, k);
    if (!cJSON_IsNumber(x)) return 0;
    *v = x->valuedouble;
    return 1;
}

int hafm_train_plot(const char *log_path, const char *png_path)
{
    FILE *in = fopen(log_path, "r");
    if (!in) {
        hafm_error("%s:", log_path);
        return -1;
    }
    char tr[] = "/tmp/hafm-plot-train.XXXXXX", va[] = "/tmp/hafm-plot-val.XXXXXX";
    int ft = mkstemp(tr), fv = ft >= 0 ? mkstemp(va) : -1;
    if (ft < 0 || fv < 0) {
        hafm_error("temporary file:");
        if (ft >= 0) { close(ft); unlink(tr); }
        fclose(in);
        return -1;
    }
    FILE *t = fdopen(ft, "w"), *v = fdopen(fv, "w");
    char *line = NULL;
    size_t cap = 0;
    int nt = 0, nv = 0, rc = -1;
    while (getline(&line, &cap, in) > 0) {
        cJSON *o = cJSON_Parse(line);
        double step, a, b;
        if (o && num(o, "step", &step)) {
            if (num(o, "loss", &a) && num(o, "acc", &b)) { fprintf(t, "%.0f %.9g %.9g\n", step, a, b); nt++; }
            if (num(o, "val_loss", &a) && num(o, "val_acc", &b)) { fprintf(v, "%.0f %.9g %.9g\n", step, a, b); nv++; }
        }
        cJSON_Delete(o);
    }
    free(line);
    fclose(in);
    fclose(t);
    fclose(v);
    if (nt + nv == 0) {
        hafm_error("%s: no training records", log_path);
        goto out;
    }
    hafm_outfile *of = hafm_outfile_open(png_path);
    if (!of) goto out;
    FILE *gp = popen("gnuplot", "w");
    if (!gp) {
        hafm_error("cannot run gnuplot:");
        hafm_outfile_abort(of);
        goto out;
    }
    /* gnuplot writes the temporary name; hafm_outfile renames it into place only on success */
    fprintf(gp, "set terminal pngcairo size 1200,450\nset output '%s'\nset multiplot layout 1,2\n"
                "set xlabel 'step'\nset grid\nset key top right\nset title 'loss (cross-entropy)'\n",
            hafm_outfile_tmpname(of));
    const char *tn = nt ? "'%s' using 1:2 with lines title 'train'" : "";
    fprintf(gp, "plot ");
    if (nt) fprintf(gp, tn, tr);
    if (nt && nv) fprintf(gp, ", ");
    if (nv) fprintf(gp, "'%s' using 1:2 with linespoints title 'validation'", va);
    fprintf(gp, "\nset title 'token accuracy'\nset key bottom right\nset yrange [0:1]\nplot ");
    if (nt) fprintf(gp, "'%s' using 1:3 with lines title 'train'", tr);
    if (nt && nv) fprintf(gp, ", ");
    if (nv) fprintf(gp, "'%s' using 1:3 with linespoints title 'validation'", va);
    fprintf(gp, "\nunset multiplot\nset output\n");
    int st = pclose(gp);
    if (st != 0) {
        hafm_error("gnuplot failed (status %d)", st);
        hafm_outfile_abort(of);
        goto out;
    }
    rc = hafm_outfile_commit(of);
out:
    unlink(tr);
    unlink(va);
    return rc;
}
