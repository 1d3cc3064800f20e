/* An extension that does not declare it can run without the GIL: importing it on a
 * free-threaded CPython turns the GIL back on (tests/test_thread_mode.py). */
#include <Python.h>

static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "gil_ext", NULL, -1, NULL};

PyMODINIT_FUNC PyInit_gil_ext(void) { return PyModule_Create(&module); }
