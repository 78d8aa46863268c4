# hafm-train is data-parallel with MPI (Debian: libopenmpi-dev, pkg-config name ompi-c).
CFLAGS_hafm-train := $(shell pkg-config --cflags ompi-c)
LIBS_hafm-train := $(shell pkg-config --libs ompi-c)
