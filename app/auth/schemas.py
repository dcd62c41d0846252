from marshmallow import Schema, fields


class UserSchema(Schema):
    id = fields.Integer()
    email = fields.Email()
    name = fields.String()
    role = fields.Function(lambda user: user.role.value)
    environment_id = fields.Integer(allow_none=True)
    language = fields.String(allow_none=True)
