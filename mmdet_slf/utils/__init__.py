# Copyright (c) mmdet-slf contributors. Licensed under the Apache License 2.0.
