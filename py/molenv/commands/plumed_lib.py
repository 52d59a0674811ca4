"""Print the absolute path of the compiled MOLENV_CLASSIFY module (for `LOAD FILE=...`)."""


def add_arguments(parser):
    pass


def run(args):
    from molenv.plumed.kernel import module_path

    print(module_path())
