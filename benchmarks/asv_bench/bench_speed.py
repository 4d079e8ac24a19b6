"""Forward latency of dense vs TissueNet models and of the stacked-layer implementations;
peak memory of one training step."""

from benchmarks.asv_bench.common import COST_MODEL, INPUT


class ModelForward:
    """Whole models in the deployment form the harness times (BN folded, fused kernels where they win)."""

    params = [["dense", "tissuenet"], [1, 64]]
    param_names = ["model", "batch"]

    def setup(self, kind, batch):
        import torch

        from benchmarks.measure.cost import deploy_form
        from tissuenet import create_model
        from tissuenet.registry import tissue_name

        torch.set_num_threads(2)
        name = COST_MODEL if kind == "dense" else tissue_name(COST_MODEL)
        self.x = torch.randn(batch, INPUT[0], INPUT[1], INPUT[1]).to(memory_format=torch.channels_last)
        self.model, _, _ = deploy_form()(create_model(name, in_channels=INPUT[0]).eval(), self.x)
        self.no_grad = torch.no_grad

    def time_forward(self, kind, batch):
        with self.no_grad():
            self.model(self.x)


class StackedLayerForward:
    """One stacked layer of 2-4-2 units (32 ch, 14x14: ResNet-56's middle stage) in each implementation,
    against the dense pair of 3x3 convs it replaces."""

    params = [["dense", "grouped", "cpu_fused"], [1, 64]]
    param_names = ["impl", "batch"]

    def setup(self, impl, batch):
        import torch

        from benchmarks.measure.stacked_speed import layers

        torch.set_num_threads(2)
        built = layers(32, "cpu")
        if impl not in built:  # the fused kernel did not build on this machine: asv records "n/a"
            raise NotImplementedError(f"{impl} is not available here")
        self.layer = built[impl]
        self.x = torch.randn(batch, 32, 14, 14).to(memory_format=torch.channels_last)
        self.no_grad = torch.no_grad

    def time_forward(self, impl, batch):
        with self.no_grad():
            self.layer(self.x)


class TrainStepMemory:
    params = [["dense", "tissuenet"]]
    param_names = ["model"]

    def setup(self, kind):
        import torch

        from tissuenet import create_model
        from tissuenet.registry import tissue_name

        torch.set_num_threads(2)
        name = COST_MODEL if kind == "dense" else tissue_name(COST_MODEL)
        self.model = create_model(name, in_channels=INPUT[0])
        self.opt = torch.optim.SGD(self.model.parameters(), lr=0.01, momentum=0.9)
        self.x = torch.randn(64, INPUT[0], INPUT[1], INPUT[1])
        self.y = torch.randint(0, 10, (64,))
        self.loss = torch.nn.functional.cross_entropy

    def peakmem_train_step(self, kind):
        self.opt.zero_grad()
        self.loss(self.model(self.x), self.y).backward()
        self.opt.step()
