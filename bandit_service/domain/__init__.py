"""The domain: experiments, decisions, rewards and reweighting, over the storage seam."""

__all__: list[str] = []
