"""Train a PushT state renderer: `cosmos3_robot.tasks.pusht.renderer_train` (its docstring gives the options)."""

from cosmos3_robot.tasks.pusht.renderer_train import main

if __name__ == "__main__":
    main()
