"""World-model pieces that agents share: the recurrent state-space model
(``rssm``), the SWAG weight posterior (``swag``) and network builders."""
